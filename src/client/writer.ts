import { ERRNO, FsError } from "../protocol/index.js";

export interface WriteBehindLimits {
  maxInFlight: number;
  maxBytes: number;
}

interface PendingWrite {
  start: number;
  end: number;
  done: Promise<void>;
}

/**
 * Write-behind for one open file: the kernel's write returns once the data is queued, up to a bounded
 * number of writes and bytes in flight. Overlapping writes are kept in order. The first error is kept
 * and reported on the next write, drain (flush, fsync, close) — never dropped.
 */
export class WriteBehind {
  private readonly pending = new Set<PendingWrite>();
  private bytesInFlight = 0;
  private failure: FsError | undefined;
  /** Resolves when the latest write() has been admitted to `pending`. */
  private admission: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (offset: number, data: Buffer) => Promise<void>,
    private readonly limits: WriteBehindLimits,
  ) {}

  get idle(): boolean {
    return this.pending.size === 0;
  }

  /**
   * Queues `data` (copied: the caller's buffer is reused by the kernel adapter) at `offset`. Writes are
   * admitted one at a time in call order, so a later write can never overtake an earlier one it overlaps.
   */
  async write(offset: number, data: Buffer): Promise<void> {
    this.throwFailure();
    const previous = this.admission;
    let admitted!: () => void;
    this.admission = new Promise((resolve) => (admitted = resolve));
    try {
      await previous;
      await this.roomFor(offset, offset + data.length, data.length);
      this.throwFailure();
      const copy = Buffer.from(data);
      const write: PendingWrite = { start: offset, end: offset + copy.length, done: Promise.resolve() };
      write.done = this.send(offset, copy).then(
        () => this.settle(write),
        (err: unknown) => {
          this.failure ??= err instanceof FsError ? err : new FsError(ERRNO.EIO!, `write-behind: ${(err as Error).message}`);
          this.settle(write);
        },
      );
      this.pending.add(write);
      this.bytesInFlight += copy.length;
    } finally {
      admitted();
    }
  }

  /** Waits until no write in flight overlaps [start, end) and the in-flight limits leave room. */
  private async roomFor(start: number, end: number, length: number): Promise<void> {
    for (;;) {
      const overlapping = [...this.pending].filter((w) => w.start < end && start < w.end);
      if (overlapping.length > 0) {
        await Promise.all(overlapping.map((w) => w.done));
        continue;
      }
      const full = this.pending.size >= this.limits.maxInFlight || (this.pending.size > 0 && this.bytesInFlight + length > this.limits.maxBytes);
      if (!full) return;
      await Promise.race([...this.pending].map((w) => w.done));
    }
  }

  /** Waits for every queued write; throws the first error not yet reported. */
  async drain(): Promise<void> {
    await this.settled();
    this.throwFailure();
  }

  /** Waits for every queued write, keeping any error for the next write, flush, fsync or close. */
  async settled(): Promise<void> {
    await this.admission;
    while (this.pending.size > 0) await Promise.all([...this.pending].map((w) => w.done));
  }

  private settle(write: PendingWrite): void {
    this.pending.delete(write);
    this.bytesInFlight -= write.end - write.start;
  }

  /** An error is reported once, like the kernel's per-file writeback errors. */
  private throwFailure(): void {
    const failure = this.failure;
    if (failure) {
      this.failure = undefined;
      throw failure;
    }
  }
}

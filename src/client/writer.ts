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

  constructor(
    private readonly send: (offset: number, data: Buffer) => Promise<void>,
    private readonly limits: WriteBehindLimits,
  ) {}

  get idle(): boolean {
    return this.pending.size === 0;
  }

  /** Queues `data` (copied: the caller's buffer is reused by the kernel adapter) at `offset`. */
  async write(offset: number, data: Buffer): Promise<void> {
    this.throwFailure();
    const end = offset + data.length;
    for (;;) {
      const overlapping = [...this.pending].filter((w) => w.start < end && offset < w.end);
      if (overlapping.length > 0) {
        await Promise.all(overlapping.map((w) => w.done));
        continue;
      }
      if (this.pending.size >= this.limits.maxInFlight || (this.pending.size > 0 && this.bytesInFlight + data.length > this.limits.maxBytes)) {
        await Promise.race([...this.pending].map((w) => w.done));
        continue;
      }
      break;
    }
    this.throwFailure();
    const copy = Buffer.from(data);
    const write: PendingWrite = { start: offset, end, done: Promise.resolve() };
    write.done = this.send(offset, copy).then(
      () => this.settle(write),
      (err: unknown) => {
        this.failure ??= err instanceof FsError ? err : new FsError(ERRNO.EIO!, `write-behind: ${(err as Error).message}`);
        this.settle(write);
      },
    );
    this.pending.add(write);
    this.bytesInFlight += copy.length;
  }

  /** Waits for every queued write; throws the first error not yet reported. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending].map((w) => w.done));
    this.throwFailure();
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

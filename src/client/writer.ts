import { ERRNO, FsError } from "../protocol/index.js";
import type { MemoryBudget } from "./budget.js";

export interface WriteBehindLimits {
  /** Bytes one message carries at most: sequential writes are coalesced up to it. */
  maxMessageBytes: number;
  /** Messages in flight at most. */
  maxInFlight: number;
  /** A partly filled message is sent after this long without a write that continues it. */
  idleFlushMs: number;
}

interface PendingWrite {
  start: number;
  end: number;
  done: Promise<void>;
}

/** Writes being gathered into one message: contiguous, through one handle. */
interface Extent<T> {
  via: T;
  start: number;
  length: number;
  chunks: Buffer[];
}

/**
 * Write-behind for one file, shared by all its handles: the kernel's write returns once the data is
 * copied and charged to the mount's memory budget. Contiguous writes through one handle are gathered
 * into messages of up to `maxMessageBytes` (the kernel sends at most 128 KiB at a time), which go out
 * in parallel, up to `maxInFlight`. A write overlapping one in flight waits for it, so writes land in
 * order. The first error is kept and reported once, on the next write or drain (flush, fsync, close);
 * the write that reports it is still queued, so an error never costs a later write its data.
 */
export class WriteBehind<T> {
  private readonly pending = new Set<PendingWrite>();
  private extent: Extent<T> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private failure: FsError | undefined;
  /** Resolves when the latest write() or flush has been admitted, so calls keep their order. */
  private admission: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (via: T, offset: number, data: Buffer) => Promise<void>,
    private readonly budget: MemoryBudget,
    private readonly limits: WriteBehindLimits,
  ) {}

  /** Nothing gathered or in flight. */
  get idle(): boolean {
    return this.pending.size === 0 && this.extent === undefined;
  }

  /** End of the data written so far (gathered or in flight), for the size this client shows. */
  get end(): number {
    let end = this.extent ? this.extent.start + this.extent.length : 0;
    for (const write of this.pending) end = Math.max(end, write.end);
    return end;
  }

  /** Queues a copy of `data` at `offset` (the kernel adapter reuses its buffer), then throws the first error not yet reported. */
  async write(via: T, offset: number, data: Uint8Array): Promise<void> {
    await this.admit(async () => {
      if (!this.budget.tryCharge("writeback", data.length)) {
        // What this file has gathered must not be what the wait is for.
        await this.dispatch();
        await this.budget.charge("writeback", data.length);
      }
      const copy = Buffer.from(data);
      const extent = this.extent;
      if (extent && extent.via === via && extent.start + extent.length === offset && extent.length + copy.length <= this.limits.maxMessageBytes) {
        extent.chunks.push(copy);
        extent.length += copy.length;
      } else {
        await this.dispatch();
        this.extent = { via, start: offset, length: copy.length, chunks: [copy] };
      }
      if (this.extent!.length >= this.limits.maxMessageBytes) await this.dispatch();
      else this.armIdleFlush();
    });
    this.throwFailure();
  }

  /** Sends what is gathered and waits for every write; throws the first error not yet reported. */
  async drain(): Promise<void> {
    await this.settled();
    this.throwFailure();
  }

  /** Sends what is gathered and waits for every write, keeping any error for the next write or drain. */
  async settled(): Promise<void> {
    await this.admit(() => this.dispatch());
    while (this.pending.size > 0) await Promise.all([...this.pending].map((w) => w.done));
  }

  /** Runs `step` after every earlier write and flush has been admitted. */
  private admit(step: () => Promise<void>): Promise<void> {
    const run = this.admission.then(step);
    this.admission = run.catch(() => undefined);
    return run;
  }

  private armIdleFlush(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.admit(() => this.dispatch()).catch(() => undefined), this.limits.idleFlushMs);
    this.idleTimer.unref();
  }

  /** Sends the gathered extent once no write in flight overlaps it and there is room. */
  private async dispatch(): Promise<void> {
    clearTimeout(this.idleTimer);
    const extent = this.extent;
    if (extent === undefined) return;
    this.extent = undefined;
    const start = extent.start;
    const end = start + extent.length;
    await this.roomFor(start, end);
    const data = extent.chunks.length === 1 ? extent.chunks[0]! : Buffer.concat(extent.chunks, extent.length);
    const write: PendingWrite = { start, end, done: Promise.resolve() };
    write.done = this.send(extent.via, start, data).then(
      () => this.settle(write),
      (err: unknown) => {
        this.failure ??= err instanceof FsError ? err : new FsError(ERRNO.EIO!, `write-behind: ${(err as Error).message}`);
        this.settle(write);
      },
    );
    this.pending.add(write);
  }

  private async roomFor(start: number, end: number): Promise<void> {
    for (;;) {
      const overlapping = [...this.pending].filter((w) => w.start < end && start < w.end);
      if (overlapping.length > 0) {
        await Promise.all(overlapping.map((w) => w.done));
        continue;
      }
      if (this.pending.size < this.limits.maxInFlight) return;
      await Promise.race([...this.pending].map((w) => w.done));
    }
  }

  private settle(write: PendingWrite): void {
    this.pending.delete(write);
    this.budget.release("writeback", write.end - write.start);
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

/**
 * How much of a write of `length` bytes at `offset` a file whose size may not exceed `maxFileSize`
 * takes: all of it below the limit, what fits across it, and none at or past it (EFBIG), as the
 * kernel's generic_write_check_limits decides for a local file. No limit: all of it.
 */
export function writableLength(offset: number, length: number, maxFileSize: number | undefined): number {
  if (maxFileSize === undefined || length === 0) return length;
  if (offset >= maxFileSize) throw new FsError(ERRNO.EFBIG!, `write at ${offset} is past the export's largest file size, ${maxFileSize}`);
  return Math.min(length, maxFileSize - offset);
}

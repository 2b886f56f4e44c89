import type { MemoryBudget } from "./budget.js";
import type { DataCache, FileKey } from "./data-cache.js";

/**
 * Readahead for one open handle over the file's shared block cache, in the spirit of JuiceFS's reader:
 * a sequential reader gets a window of blocks fetched in parallel before the kernel asks for them,
 * doubling on every sequential read up to `maxAheadBlocks` blocks of the bus's message size; blocks
 * behind it are dropped. Random reads fetch exactly what they need and cache nothing. The block at the
 * end of the file is never cached, so data appended since it was read is fetched, never hidden.
 */
export interface ReadAheadOptions {
  /** Bytes per block: one request's worth (the bus's message limit). */
  blockBytes: number;
  /** Blocks fetched ahead of a sequential reader at most. */
  maxAheadBlocks: number;
}

/** What a reader needs of its file: the shared cache key, the size known now and fetches in flight. */
export interface ReadableFile {
  readonly key: FileKey;
  /** Size as last seen; readahead never fetches past it. */
  readonly size: number;
  /** Bumped whenever the file's cached data is dropped: a fetch started before must not be cached. */
  readonly generation: number;
  /** Block fetches in flight, shared by every handle of the file. */
  readonly fetching: Map<number, Promise<Uint8Array>>;
}

export type Fetch = (offset: number, length: number) => Promise<Uint8Array>;

export class ReadAhead {
  private nextSequentialOffset = -1;
  private aheadBlocks = 0;

  constructor(
    private readonly file: ReadableFile,
    private readonly cache: DataCache,
    private readonly budget: MemoryBudget,
    private readonly fetch: Fetch,
    private readonly options: ReadAheadOptions,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    const size = this.options.blockBytes;
    const first = Math.floor(offset / size);
    const last = Math.floor((offset + length - 1) / size);
    // The kernel's own readahead sends several reads at once, which may arrive out of order: a read
    // near where the last one ended, or in a block already held, continues the stream.
    const near = Math.abs(offset - this.nextSequentialOffset) <= size * Math.max(1, this.aheadBlocks);
    const sequential = near || this.isHeld(first);
    this.nextSequentialOffset = sequential ? Math.max(this.nextSequentialOffset, offset + length) : offset + length;
    if (!sequential) {
      this.aheadBlocks = 0;
      return this.fetch(offset, length);
    }
    this.aheadBlocks = Math.min(this.options.maxAheadBlocks, Math.max(1, this.aheadBlocks * 2));
    this.cache.dropFile(this.file.key, (index) => index < first);
    const wanted: Promise<Uint8Array>[] = [];
    for (let index = first; index <= last; index++) wanted.push(this.block(index));
    const endBlock = Math.ceil(this.file.size / size);
    for (let index = last + 1; index <= last + this.aheadBlocks && index < endBlock; index++) {
      if (this.isHeld(index)) continue;
      // Blocks fetched ahead are charged while in flight; with no room left, the reader waits for data instead.
      if (!this.budget.tryCharge("data", size)) break;
      void this.block(index, size).catch(() => undefined);
    }

    const parts = await Promise.all(wanted);
    // A short block ends the file as it was when fetched; bytes past it are asked for again.
    const held = parts.findIndex((part) => part.length < size);
    const usable = held === -1 ? parts : parts.slice(0, held + 1);
    const joined = usable.length === 1 ? usable[0]! : Buffer.concat(usable);
    const start = offset - first * size;
    const answer = joined.subarray(Math.min(start, joined.length), Math.min(joined.length, start + length));
    if (answer.length < length && offset + answer.length < this.file.size) {
      return Buffer.concat([answer, await this.fetch(offset + answer.length, length - answer.length)]);
    }
    return answer;
  }

  private isHeld(index: number): boolean {
    return this.file.fetching.has(index) || this.cache.get(this.file.key, index) !== undefined;
  }

  /** `prepaid`: bytes charged for this fetch while in flight, given back when it settles. */
  private block(index: number, prepaid = 0): Promise<Uint8Array> {
    const cached = this.cache.get(this.file.key, index);
    if (cached !== undefined) return Promise.resolve(cached);
    let fetching: Promise<Uint8Array> | undefined = this.file.fetching.get(index);
    if (fetching === undefined) {
      const size = this.options.blockBytes;
      const generation = this.file.generation;
      const settled = () => {
        this.budget.release("data", prepaid);
        if (this.file.fetching.get(index) === fetching) this.file.fetching.delete(index);
      };
      fetching = this.fetch(index * size, size).then(
        (data) => {
          settled();
          // The end-of-file block is never kept: the file may grow.
          if (data.length === size && generation === this.file.generation) this.cache.put(this.file.key, index, data);
          return data;
        },
        (err: unknown) => {
          settled(); // a failed fetch is retried by the next read, not cached
          throw err;
        },
      );
      this.file.fetching.set(index, fetching);
    }
    return fetching;
  }
}

/**
 * Readahead for one open file, in the spirit of JuiceFS's reader: a sequential reader gets the next
 * blocks fetched in parallel before the kernel asks for them, so a stream is limited by bandwidth
 * rather than by one round trip per kernel read. Random reads fetch only what they need.
 */
export interface ReadAheadOptions {
  /** Bytes per fetched block; a kernel read is at most 128 KiB. */
  blockBytes: number;
  /** Blocks fetched ahead of a sequential reader at most. */
  maxAheadBlocks: number;
}

export class ReadAhead {
  private readonly blocks = new Map<number, Promise<Uint8Array>>();
  private nextSequentialOffset = -1;
  private aheadBlocks = 0;
  /** First block index known to lie past the end of the file. */
  private endBlock = Infinity;

  constructor(
    private readonly fetch: (offset: number, length: number) => Promise<Uint8Array>,
    private readonly options: ReadAheadOptions,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    const size = this.options.blockBytes;
    const sequential = offset === this.nextSequentialOffset;
    this.aheadBlocks = sequential ? Math.min(this.options.maxAheadBlocks, Math.max(1, this.aheadBlocks * 2)) : 0;
    this.nextSequentialOffset = offset + length;

    const first = Math.floor(offset / size);
    const last = Math.floor((offset + length - 1) / size);
    this.forgetBefore(first);
    const wanted: Promise<Uint8Array>[] = [];
    for (let index = first; index <= last; index++) wanted.push(this.block(index));
    for (let index = last + 1; index <= last + this.aheadBlocks && index < this.endBlock; index++) void this.block(index).catch(() => undefined);

    const parts = await Promise.all(wanted);
    const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const start = offset - first * size;
    return joined.subarray(start, Math.min(joined.length, start + length));
  }

  /** Forgets every fetched block: the file changed through this client. */
  invalidate(): void {
    this.blocks.clear();
    this.endBlock = Infinity;
    this.nextSequentialOffset = -1;
    this.aheadBlocks = 0;
  }

  private block(index: number): Promise<Uint8Array> {
    let block = this.blocks.get(index);
    if (block === undefined) {
      const size = this.options.blockBytes;
      block = this.fetch(index * size, size).then(
        (data) => {
          if (data.length < size) this.endBlock = Math.min(this.endBlock, index + 1);
          return data;
        },
        (err: unknown) => {
          this.blocks.delete(index); // a failed fetch is retried by the next read, not cached
          throw err;
        },
      );
      this.blocks.set(index, block);
    }
    return block;
  }

  /** Blocks behind the reader are not read again by a sequential reader; a random one refetches. */
  private forgetBefore(index: number): void {
    for (const key of this.blocks.keys()) if (key < index) this.blocks.delete(key);
  }
}

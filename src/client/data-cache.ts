import type { MemoryBudget } from "./budget.js";

/** Identifies one file of one export: (export, inode). */
export type FileKey = string;

export function fileKey(exportName: string, ino: number): FileKey {
  return `${exportName}\0${ino}`;
}

interface Block {
  file: FileKey;
  index: number;
  data: Uint8Array;
}

/**
 * File data fetched from servers, in fixed-size blocks, shared by every handle of a file and charged to
 * the mount's memory budget. Least recently used blocks go first when the budget needs room. A block
 * shorter than the block size ends at the end of the file as it was when fetched: it only answers
 * for the bytes it holds (reader.ts), so data appended since is fetched, never hidden.
 */
export class DataCache {
  /** Insertion order is recency order. */
  private readonly blocks = new Map<string, Block>();
  private readonly byFile = new Map<FileKey, Set<number>>();

  constructor(private readonly budget: MemoryBudget) {
    budget.addEvictor((bytes) => this.evict(bytes));
  }

  get size(): number {
    return this.blocks.size;
  }

  get(file: FileKey, index: number): Uint8Array | undefined {
    const key = blockKey(file, index);
    const block = this.blocks.get(key);
    if (block === undefined) return undefined;
    this.blocks.delete(key);
    this.blocks.set(key, block);
    return block.data;
  }

  /** Keeps a block if the budget has room for it (after evicting older ones); false when it had none. */
  put(file: FileKey, index: number, data: Uint8Array): boolean {
    this.drop(file, index);
    if (!this.budget.tryCharge("data", data.length)) return false;
    this.blocks.set(blockKey(file, index), { file, index, data });
    let indexes = this.byFile.get(file);
    if (indexes === undefined) this.byFile.set(file, (indexes = new Set()));
    indexes.add(index);
    return true;
  }

  /** Forgets the blocks of `file` for which `which` is true (all of them by default). */
  dropFile(file: FileKey, which: (index: number) => boolean = () => true): void {
    const indexes = this.byFile.get(file);
    if (indexes === undefined) return;
    for (const index of [...indexes]) if (which(index)) this.drop(file, index);
  }

  clear(): void {
    for (const block of [...this.blocks.values()]) this.drop(block.file, block.index);
  }

  private drop(file: FileKey, index: number): void {
    const key = blockKey(file, index);
    const block = this.blocks.get(key);
    if (block === undefined) return;
    this.blocks.delete(key);
    const indexes = this.byFile.get(file)!;
    indexes.delete(index);
    if (indexes.size === 0) this.byFile.delete(file);
    this.budget.release("data", block.data.length);
  }

  private evict(bytes: number): number {
    let freed = 0;
    for (const block of this.blocks.values()) {
      if (freed >= bytes) break;
      freed += block.data.length;
      this.drop(block.file, block.index);
    }
    return freed;
  }
}

function blockKey(file: FileKey, index: number): string {
  return `${file}\0${index}`;
}

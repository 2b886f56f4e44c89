import type { Stat } from "../protocol/index.js";
import type { MemoryBudget } from "./budget.js";

/** What the cache knows of a name: its attributes, or that it does not exist. */
export type MetaEntry = { stat: Stat } | { missing: true };

interface Slot {
  entry: MetaEntry;
  expires: number;
}

/** Bytes one cached name is charged to the memory budget (the Stat object, its key and the maps). */
export const META_ENTRY_BYTES = 512;

/**
 * Names → attributes of one export, positive and negative, as NFS clients keep them. Kept coherent by
 * change notices and this client's own changes, which drop what they touch; changes made on the
 * server's disk by other programs show once an entry is `ttlMs` old (NFS's actimeo). Files are kept
 * too: every write, truncate and change notice of a file drops its entries through the inode index,
 * so sizes and link counts stay exact through every name of it.
 */
export class MetaCache {
  /** Insertion order is recency order. */
  private readonly slots = new Map<string, Slot>();
  private readonly pathsOfIno = new Map<number, Set<string>>();

  constructor(
    private readonly ttlMs: number,
    private readonly budget: MemoryBudget,
    private readonly now: () => number = Date.now,
  ) {
    budget.addEvictor((bytes) => this.evict(bytes));
  }

  get size(): number {
    return this.slots.size;
  }

  get(path: string): MetaEntry | undefined {
    const slot = this.slots.get(path);
    if (slot === undefined) return undefined;
    if (slot.expires <= this.now()) {
      this.drop(path);
      return undefined;
    }
    this.slots.delete(path);
    this.slots.set(path, slot);
    return slot.entry;
  }

  /** The inode a name was last seen with, even if its attributes have expired. */
  inoOf(path: string): number | undefined {
    const entry = this.slots.get(path)?.entry;
    return entry !== undefined && "stat" in entry ? entry.stat.ino : undefined;
  }

  put(path: string, stat: Stat): void {
    this.set(path, { stat });
  }

  putMissing(path: string): void {
    this.set(path, { missing: true });
  }

  /** `path` changed: drops it, its parent (whose mtime and link count move) and every other name of its inode. */
  changed(path: string): void {
    const ino = this.inoOf(path);
    this.drop(path);
    this.drop(parentOf(path));
    if (ino !== undefined) this.inoChanged(ino);
  }

  /** `path` and everything below it moved or went away (rename, rmdir). */
  treeChanged(path: string): void {
    this.changed(path);
    const prefix = path === "/" ? "/" : `${path}/`;
    for (const key of [...this.slots.keys()]) if (key.startsWith(prefix)) this.drop(key);
  }

  /** The inode's attributes changed (data written, truncated, linked): every name of it is stale. */
  inoChanged(ino: number): void {
    for (const path of [...(this.pathsOfIno.get(ino) ?? [])]) this.drop(path);
  }

  clear(): void {
    for (const path of [...this.slots.keys()]) this.drop(path);
  }

  private set(path: string, entry: MetaEntry): void {
    if (this.ttlMs <= 0) return;
    this.drop(path);
    if (!this.budget.tryCharge("metadata", META_ENTRY_BYTES)) return;
    this.slots.set(path, { entry, expires: this.now() + this.ttlMs });
    if ("stat" in entry) {
      let paths = this.pathsOfIno.get(entry.stat.ino);
      if (paths === undefined) this.pathsOfIno.set(entry.stat.ino, (paths = new Set()));
      paths.add(path);
    }
  }

  private drop(path: string): void {
    const slot = this.slots.get(path);
    if (slot === undefined) return;
    this.slots.delete(path);
    if ("stat" in slot.entry) {
      const paths = this.pathsOfIno.get(slot.entry.stat.ino);
      paths?.delete(path);
      if (paths?.size === 0) this.pathsOfIno.delete(slot.entry.stat.ino);
    }
    this.budget.release("metadata", META_ENTRY_BYTES);
  }

  private evict(bytes: number): number {
    let freed = 0;
    for (const path of this.slots.keys()) {
      if (freed >= bytes) break;
      freed += META_ENTRY_BYTES;
      this.drop(path);
    }
    return freed;
  }
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

import type { Change } from "../protocol/index.js";
import type { MemoryBudget } from "./budget.js";
import type { DataCache } from "./data-cache.js";
import { FileTable } from "./file-state.js";
import { MetaCache } from "./meta-cache.js";
import type { Rpc } from "./rpc.js";

/** Directories smaller than this are not worth re-listing for one name. */
const RELIST_MIN_ENTRIES = 64;
/** How long after a listing misses in its directory may re-list it, and after how many misses. */
const RELIST_WINDOW_MS = 30_000;
const RELIST_AFTER_MISSES = 32;
const MAX_LISTED_DIRS = 64;

/** What the VFS needs of an export's RPC: the real one, or a fake in unit tests. */
export type ExportRpc = Pick<Rpc, "exportName" | "maxDataBytes" | "call" | "fenced">;

/**
 * Everything one mounted export has cached: names and attributes, and its files by inode. Change
 * notices, this client's own changes and reconnects all come through here to keep them coherent.
 */
export class ExportState {
  readonly meta: MetaCache;
  readonly files: FileTable;

  constructor(
    readonly rpc: ExportRpc,
    budget: MemoryBudget,
    data: DataCache,
    attrTtlMs: number,
  ) {
    this.meta = new MetaCache(attrTtlMs, budget);
    this.files = new FileTable(rpc.exportName, data);
  }

  /**
   * Large directories listed lately (READDIRPLUS), by when. A miss on a name in one of them is answered
   * by listing the directory again, one round trip per page instead of one per name: `ls -l` of a
   * directory that takes longer than the attribute timeout to walk stays cheap.
   */
  private readonly listedAt = new Map<string, { at: number; misses: number }>();
  /** Re-listings in flight, so concurrent misses wait for one. */
  readonly relisting = new Map<string, Promise<string[]>>();

  noteListing(dir: string, entries: number, now = Date.now()): void {
    if (entries < RELIST_MIN_ENTRIES) return;
    this.listedAt.delete(dir);
    if (this.listedAt.size >= MAX_LISTED_DIRS) this.listedAt.delete(this.listedAt.keys().next().value!);
    this.listedAt.set(dir, { at: now, misses: 0 });
  }

  /**
   * A name of `dir` missed the cache: true when the directory was listed lately and enough of its names
   * have missed since that listing again pays (one listing costs about what a few dozen lookups do).
   */
  worthRelisting(dir: string, now = Date.now()): boolean {
    const listing = this.listedAt.get(dir);
    if (listing === undefined || now - listing.at >= RELIST_WINDOW_MS) return false;
    listing.misses += 1;
    return listing.misses >= RELIST_AFTER_MISSES;
  }

  get name(): string {
    return this.rpc.exportName;
  }

  /** Drops what a change touches, made by this client or announced by a server. */
  apply(change: Change): void {
    if (change.ino !== undefined) this.inoChanged(change.ino);
    if (change.path !== undefined) {
      const ino = this.meta.inoOf(change.path);
      if (change.tree) this.meta.treeChanged(change.path);
      else this.meta.changed(change.path);
      if (ino !== undefined) this.inoChanged(ino);
    }
  }

  /** Notices may have been missed (reconnect): nothing cached can be trusted. */
  forgetAll(): void {
    this.listedAt.clear();
    this.meta.clear();
    this.files.invalidateAll();
  }

  private inoChanged(ino: number): void {
    this.meta.inoChanged(ino);
    this.files.get(ino)?.invalidate();
  }
}

import type { Change } from "../protocol/index.js";
import type { MemoryBudget } from "./budget.js";
import type { DataCache } from "./data-cache.js";
import { FileTable } from "./file-state.js";
import { MetaCache } from "./meta-cache.js";
import type { Rpc } from "./rpc.js";

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
    this.meta.clear();
    this.files.invalidateAll();
  }

  private inoChanged(ino: number): void {
    this.meta.inoChanged(ino);
    this.files.get(ino)?.invalidate();
  }
}

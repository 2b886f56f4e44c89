import { constants } from "node:fs";
import type { Stat } from "../protocol/index.js";

/**
 * Attributes of directories, kept briefly. With `default_permissions` the kernel checks every
 * directory of a path on each lookup, create and unlink, and it caches no attributes (see
 * ClientOptions.attrTimeoutS): without this, a stat of a file two levels down costs four round trips.
 * Only directories are kept (files' sizes and link counts must stay exact); this client's own changes
 * drop what they touch, other clients' show within `ttlMs`, as with NFS's acdirmin.
 */
export class DirAttrCache {
  private readonly entries = new Map<string, { stat: Stat; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  get(path: string): Stat | undefined {
    const entry = this.entries.get(path);
    if (entry === undefined) return undefined;
    if (entry.expires > this.now()) return entry.stat;
    this.entries.delete(path);
    return undefined;
  }

  /** Keeps `stat` if it is a directory's. */
  offer(path: string, stat: Stat): void {
    if ((stat.mode & constants.S_IFMT) !== constants.S_IFDIR || this.ttlMs <= 0) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(path, { stat, expires: this.now() + this.ttlMs });
  }

  /** `path` changed: it, everything below it and its parent directory (whose mtime and nlink move). */
  changed(path: string): void {
    this.entries.delete(parentOf(path));
    const prefix = path === "/" ? "/" : `${path}/`;
    for (const key of this.entries.keys()) if (key === path || key.startsWith(prefix)) this.entries.delete(key);
  }
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

import { ERRNO, FsError } from "../protocol/index.js";
import { closeQuietly } from "./confine.js";

/** An open file (holding its fd) or a directory listing taken at opendir. */
export type HandleEntry =
  | { kind: "file"; fd: number; path: string; flags: number; identity: string }
  | { kind: "dir"; path: string; names: string[]; identity: string };

/**
 * The handles one export has given out. Numbers are only meaningful to this instance and epoch,
 * and each belongs to the identity that opened it: any other identity gets ESTALE, as for a handle
 * this instance never issued.
 */
export class HandleTable {
  private readonly entries = new Map<number, HandleEntry>();
  private nextHandle = 1;

  constructor(
    private readonly capacity: number,
    private readonly onCountChange: (count: number) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Fails with EMFILE when full; the caller still owns (and must close) the entry's fd then. */
  add(entry: HandleEntry): number {
    if (this.entries.size >= this.capacity) throw new FsError(ERRNO.EMFILE!, "too many open handles on this export");
    const handle = this.nextHandle++;
    this.entries.set(handle, entry);
    this.onCountChange(this.entries.size);
    return handle;
  }

  get<K extends HandleEntry["kind"]>(handle: number, kind: K, identity: string): Extract<HandleEntry, { kind: K }> {
    const entry = this.entries.get(handle);
    if (entry === undefined || entry.identity !== identity) throw new FsError(ERRNO.ESTALE!, `unknown handle ${handle}`);
    if (entry.kind !== kind) throw new FsError(kind === "dir" ? ERRNO.ENOTDIR! : ERRNO.EISDIR!, `handle ${handle} is a ${entry.kind}`);
    return entry as Extract<HandleEntry, { kind: K }>;
  }

  /** Forgets a handle and closes its fd. */
  async remove(handle: number, kind: HandleEntry["kind"], identity: string): Promise<void> {
    const entry = this.get(handle, kind, identity);
    this.entries.delete(handle);
    this.onCountChange(this.entries.size);
    if (entry.kind === "file") await closeQuietly(entry.fd);
  }

  async closeAll(): Promise<void> {
    const open = [...this.entries.values()];
    this.entries.clear();
    this.onCountChange(0);
    await Promise.all(open.map((entry) => (entry.kind === "file" ? closeQuietly(entry.fd) : undefined)));
  }
}

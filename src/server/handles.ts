import { ERRNO, FsError } from "../protocol/index.js";
import { closeQuietly } from "./confine.js";

/** An open file (holding its fd) or a directory listing taken at opendir. */
export type HandleEntry =
  | { kind: "file"; fd: number; path: string; flags: number; identity: string }
  | { kind: "dir"; path: string; names: string[]; identity: string };

interface Slot {
  entry: HandleEntry;
  /** Ops using the fd right now: it is closed only when none is, so an fd number is never reused under one. */
  busy: number;
  released: boolean;
}

/**
 * The handles one export has given out. Numbers are only meaningful to this instance and epoch,
 * and each belongs to the identity that opened it: any other identity gets ESTALE, as for a handle
 * this instance never issued.
 *
 * Bounded: when full, the least recently used idle handle is closed to make room. Clients that
 * crashed never release theirs, and a live client whose handle was closed gets ESTALE and re-opens
 * the path (design.md, Handles and remapping), so eviction costs a round trip, never an error.
 */
export class HandleTable {
  /** Insertion order is recency order: every use moves a handle to the end. */
  private readonly slots = new Map<number, Slot>();
  private nextHandle = 1;

  constructor(
    private readonly capacity: number,
    private readonly onCountChange: (count: number) => void,
    private readonly onEvict: (entry: HandleEntry) => void = () => {},
  ) {}

  get size(): number {
    return this.slots.size;
  }

  /** Fails with EMFILE only when every handle is busy; the caller then still owns the entry's fd. */
  add(entry: HandleEntry): number {
    if (this.slots.size >= this.capacity) this.evictIdle();
    const handle = this.nextHandle++;
    this.slots.set(handle, { entry, busy: 0, released: false });
    this.onCountChange(this.slots.size);
    return handle;
  }

  /** Looks a handle up for an op that does not touch its fd. */
  get<K extends HandleEntry["kind"]>(handle: number, kind: K, identity: string): Extract<HandleEntry, { kind: K }> {
    return this.slot(handle, kind, identity).entry as Extract<HandleEntry, { kind: K }>;
  }

  /** Runs `fn` with the handle's entry; its fd stays open until `fn` settles, even if released meanwhile. */
  async use<K extends HandleEntry["kind"], T>(
    handle: number,
    kind: K,
    identity: string,
    fn: (entry: Extract<HandleEntry, { kind: K }>) => Promise<T>,
  ): Promise<T> {
    const slot = this.slot(handle, kind, identity);
    slot.busy += 1;
    try {
      return await fn(slot.entry as Extract<HandleEntry, { kind: K }>);
    } finally {
      slot.busy -= 1;
      if (slot.released && slot.busy === 0) await closeEntry(slot.entry);
    }
  }

  /** Forgets a handle; its fd is closed once no op uses it. */
  async remove(handle: number, kind: HandleEntry["kind"], identity: string): Promise<void> {
    const slot = this.slot(handle, kind, identity);
    await this.drop(handle, slot);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.slots].map(([handle, slot]) => this.drop(handle, slot)));
  }

  private slot(handle: number, kind: HandleEntry["kind"], identity: string): Slot {
    const slot = this.slots.get(handle);
    if (slot === undefined || slot.entry.identity !== identity) throw new FsError(ERRNO.ESTALE!, `unknown handle ${handle}`);
    if (slot.entry.kind !== kind) throw new FsError(kind === "dir" ? ERRNO.ENOTDIR! : ERRNO.EISDIR!, `handle ${handle} is a ${slot.entry.kind}`);
    this.slots.delete(handle);
    this.slots.set(handle, slot);
    return slot;
  }

  private async drop(handle: number, slot: Slot): Promise<void> {
    this.slots.delete(handle);
    this.onCountChange(this.slots.size);
    slot.released = true;
    if (slot.busy === 0) await closeEntry(slot.entry);
  }

  private evictIdle(): void {
    for (const [handle, slot] of this.slots) {
      if (slot.busy > 0) continue;
      this.onEvict(slot.entry);
      void this.drop(handle, slot);
      return;
    }
    throw new FsError(ERRNO.EMFILE!, "too many open handles on this export");
  }
}

async function closeEntry(entry: HandleEntry): Promise<void> {
  if (entry.kind === "file") await closeQuietly(entry.fd);
}

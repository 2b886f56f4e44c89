import { ERRNO, FsError } from "../protocol/index.js";
import { closeQuietly } from "./confine.js";
import type { DirectoryListing } from "./listing.js";

/** An open file (holding its fd) or an open directory (its O_PATH fd and a streaming listing). */
export type HandleEntry =
  | { kind: "file"; fd: number; path: string; flags: number; identity: string; client: string }
  | { kind: "dir"; fd: number; path: string; listing: DirectoryListing; identity: string; client: string };

interface Slot {
  entry: HandleEntry;
  /** Ops using the fd right now: it is closed only when none is, so an fd number is never reused under one. */
  busy: number;
  released: boolean;
}

/** Memory the process charges for each open handle (an fd, a slot, a directory stream's buffer). */
export interface HandleBudget {
  hold(bytes: number): boolean;
  unhold(bytes: number): void;
}

export interface HandleLimits {
  /** Handles the export holds at most, for all identities. */
  perExport: number;
  /** Handles one identity holds at most on the export. */
  perIdentity: number;
  /** Bytes charged to the process budget per handle. */
  bytesPerHandle: number;
}

/** Why a handle was closed without its client asking. */
export type EvictionReason = "identity_full" | "export_full" | "lease_lapsed";

/**
 * The handles one export has given out. Numbers are only meaningful to this instance and epoch,
 * and each belongs to the identity that opened it: any other identity gets ESTALE, as for a handle
 * this instance never issued.
 *
 * Bounded per identity and per export, and charged to the process's memory budget. An identity at
 * its bound loses its own least recently used idle handle; a full export takes one from the identity
 * holding the most, so no identity can push another's handles out while holding less than it. A live
 * client whose handle was closed gets ESTALE and re-opens the path (design.md, Handles and remapping),
 * so eviction costs a round trip, not an error. Handles of clients whose lease lapsed are reclaimed.
 */
export class HandleTable {
  /** Insertion order is recency order: every use moves a handle to the end. */
  private readonly slots = new Map<number, Slot>();
  private readonly perIdentity = new Map<string, number>();
  private nextHandle = 1;

  constructor(
    private readonly limits: HandleLimits,
    private readonly budget: HandleBudget,
    private readonly onCountChange: (count: number) => void,
    private readonly onEvict: (entry: HandleEntry, reason: EvictionReason) => void = () => {},
  ) {}

  get size(): number {
    return this.slots.size;
  }

  /**
   * Fails with ENFILE when every handle that could make room is busy or the process's memory budget
   * is spent; the caller then still owns the entry's fd.
   */
  add(entry: HandleEntry): number {
    if ((this.perIdentity.get(entry.identity) ?? 0) >= this.limits.perIdentity) this.evictIdle(entry.identity, "identity_full");
    else if (this.slots.size >= this.limits.perExport) this.evictIdle(this.largestHolder(), "export_full");
    if (!this.budget.hold(this.limits.bytesPerHandle)) throw new FsError(ERRNO.ENFILE!, "the server's memory budget for handles is spent");
    const handle = this.nextHandle++;
    this.slots.set(handle, { entry, busy: 0, released: false });
    this.perIdentity.set(entry.identity, (this.perIdentity.get(entry.identity) ?? 0) + 1);
    this.onCountChange(this.slots.size);
    return handle;
  }

  /** The client holding `handle`; ESTALE when this identity holds no such handle. */
  owner(handle: number, identity: string): string {
    const slot = this.slots.get(handle);
    if (slot === undefined || slot.entry.identity !== identity) throw new FsError(ERRNO.ESTALE!, `unknown handle ${handle}`);
    return slot.entry.client;
  }

  /** Closes the idle handles of clients `lapsed` says are gone; returns how many. */
  reclaim(lapsed: (client: string) => boolean): number {
    let reclaimed = 0;
    for (const [handle, slot] of [...this.slots]) {
      if (slot.busy > 0 || !lapsed(slot.entry.client)) continue;
      this.onEvict(slot.entry, "lease_lapsed");
      void this.drop(handle, slot);
      reclaimed += 1;
    }
    return reclaimed;
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
    const identity = slot.entry.identity;
    const held = (this.perIdentity.get(identity) ?? 1) - 1;
    if (held > 0) this.perIdentity.set(identity, held);
    else this.perIdentity.delete(identity);
    this.budget.unhold(this.limits.bytesPerHandle);
    this.onCountChange(this.slots.size);
    slot.released = true;
    if (slot.busy === 0) await closeEntry(slot.entry);
  }

  private largestHolder(): string {
    let largest = "";
    let most = -1;
    for (const [identity, count] of this.perIdentity) if (count > most) [largest, most] = [identity, count];
    return largest;
  }

  /** Closes the least recently used idle handle of `identity`. */
  private evictIdle(identity: string, reason: EvictionReason): void {
    for (const [handle, slot] of this.slots) {
      if (slot.busy > 0 || slot.entry.identity !== identity) continue;
      this.onEvict(slot.entry, reason);
      void this.drop(handle, slot);
      return;
    }
    throw new FsError(ERRNO.ENFILE!, "too many open handles on this export, all in use");
  }
}

async function closeEntry(entry: HandleEntry): Promise<void> {
  if (entry.kind === "dir") await entry.listing.close();
  await closeQuietly(entry.fd);
}

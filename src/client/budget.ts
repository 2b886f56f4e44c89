/** What a mount holds memory for: cached file data, data written and not yet acknowledged, attributes. */
export type CacheKind = "data" | "writeback" | "metadata";
export const CACHE_KINDS: readonly CacheKind[] = ["data", "writeback", "metadata"];

/** Frees up to `bytes` of clean (re-fetchable) memory; returns what it freed. */
export type Evictor = (bytes: number) => number;

/**
 * One memory budget per mount (`--cache-size`): readahead, the data cache, write-behind and the
 * attribute cache all charge it. Clean memory is given back on demand through the evictors (least
 * recently used first); write-behind, which cannot be dropped, waits for room instead.
 */
export class MemoryBudget {
  private readonly used = new Map<CacheKind, number>(CACHE_KINDS.map((kind) => [kind, 0]));
  private readonly evictors: Evictor[] = [];
  private waiting: Array<() => void> = [];
  private total = 0;

  constructor(
    readonly limitBytes: number,
    private readonly onChange: (kind: CacheKind, bytes: number) => void = () => {},
  ) {}

  get usedBytes(): number {
    return this.total;
  }

  usedBy(kind: CacheKind): number {
    return this.used.get(kind)!;
  }

  /** Evictors are asked in the order they were added. */
  addEvictor(evictor: Evictor): void {
    this.evictors.push(evictor);
  }

  /** Charges `bytes` if they fit, after evicting clean memory if needed; false when they do not. */
  tryCharge(kind: CacheKind, bytes: number): boolean {
    if (!this.makeRoom(bytes)) return false;
    this.add(kind, bytes);
    return true;
  }

  /**
   * Charges `bytes`, waiting until memory is given back when even eviction leaves no room. A charge
   * larger than the whole budget is let through when nothing else is held, so it cannot wait forever.
   */
  async charge(kind: CacheKind, bytes: number): Promise<void> {
    while (!this.makeRoom(bytes) && this.total > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.add(kind, bytes);
  }

  release(kind: CacheKind, bytes: number): void {
    if (bytes === 0) return;
    this.add(kind, -bytes);
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }

  private makeRoom(bytes: number): boolean {
    let over = this.total + bytes - this.limitBytes;
    for (const evict of this.evictors) {
      if (over <= 0) break;
      over -= evict(over);
    }
    return over <= 0;
  }

  private add(kind: CacheKind, bytes: number): void {
    const now = this.used.get(kind)! + bytes;
    this.used.set(kind, now);
    this.total += bytes;
    this.onChange(kind, now);
  }
}

/**
 * Duplicate-request cache for non-idempotent ops: a retry of a request this instance already
 * executed (or is still executing) gets the first execution's encoded reply instead of running again,
 * so a retried mkdir does not turn its own success into EEXIST.
 * Bounded LRU: the oldest entries go first, finished entries expire after `ttlMs`.
 */
export class DuplicateRequestCache<V> {
  /** Insertion order is recency order: a hit is moved to the end. */
  private readonly entries = new Map<string, { reply: Promise<V>; expiresAt: number }>();

  constructor(
    private readonly capacity: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Returns the cached or in-flight reply for `key`, or runs `execute` and remembers its reply.
   * `hit` tells whether the reply came from an earlier execution.
   */
  async run(key: string, execute: () => Promise<V>): Promise<{ reply: V; hit: boolean }> {
    const cached = this.entries.get(key);
    if (cached !== undefined && cached.expiresAt > this.now()) {
      this.entries.delete(key);
      this.entries.set(key, cached);
      return { reply: await cached.reply, hit: true };
    }
    const reply = execute();
    // Still executing: never expires until it settles, so a retry that arrives meanwhile waits on it.
    const entry = { reply, expiresAt: Number.POSITIVE_INFINITY };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.evict();
    try {
      const bytes = await reply;
      entry.expiresAt = this.now() + this.ttlMs;
      return { reply: bytes, hit: false };
    } catch (err) {
      // Only replies are cached; a failure to produce one is not an outcome to repeat.
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
  }

  private evict(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.capacity && entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}

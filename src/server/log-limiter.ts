/**
 * Log lines any identity can cause (a refused path, an evicted handle) must not let it grow the log
 * without bound: each kind of line gets a token bucket, and what it suppresses is counted and summed
 * up in the next line of that kind that gets through.
 */
export interface LogLimits {
  /** Lines of one kind let through in a burst. */
  burst: number;
  /** Lines of one kind let through per second once the burst is spent. */
  perSecond: number;
}

export class LogLimiter<K extends string> {
  private readonly buckets = new Map<K, { tokens: number; at: number; suppressed: number }>();

  constructor(
    private readonly limits: LogLimits,
    private readonly onSuppressed: (kind: K) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether a line of `kind` may be written now; when it may, how many lines of that kind were
   * suppressed since the last one written (0 if none).
   */
  admit(kind: K): { write: boolean; suppressed: number } {
    const now = this.now();
    let bucket = this.buckets.get(kind);
    if (bucket === undefined) this.buckets.set(kind, (bucket = { tokens: this.limits.burst, at: now, suppressed: 0 }));
    bucket.tokens = Math.min(this.limits.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limits.perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) {
      bucket.suppressed += 1;
      this.onSuppressed(kind);
      return { write: false, suppressed: 0 };
    }
    bucket.tokens -= 1;
    const suppressed = bucket.suppressed;
    bucket.suppressed = 0;
    return { write: true, suppressed };
  }
}

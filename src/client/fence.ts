/**
 * Fencing of server instances the client gave up on (issue: a frozen instance that thaws must never
 * apply a request its client has moved on from).
 *
 * Every attempt carries an absolute deadline, and servers drop a request once its deadline has passed,
 * checked on arrival and again right before the disk write. So an attempt that got no answer can only
 * still take effect until its deadline plus the clock skew between client and server. This records,
 * per instance, the attempts sent and not answered, and tells when the last of them is certainly dead:
 * a handle moves to another instance, and a timed-out call is re-sent, only after that moment.
 */
export class InstanceFence {
  /** Unanswered attempts per instance (undefined: the export's queue group), by deadline. */
  private readonly outstanding = new Map<string, Map<number, number>>();
  private nextToken = 1;

  constructor(
    /** How far a server's clock may be behind this client's (README: what is assumed of clocks). */
    private readonly clockSkewMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records an attempt sent to `instance` with `deadline`; call the returned function once it is answered. */
  sent(instance: string, deadline: number): () => void {
    const token = this.nextToken++;
    if (token % 1024 === 0) this.forgetExpired();
    let attempts = this.outstanding.get(instance);
    if (attempts === undefined) this.outstanding.set(instance, (attempts = new Map()));
    attempts.set(token, deadline);
    return () => {
      attempts.delete(token);
      if (attempts.size === 0 && this.outstanding.get(instance) === attempts) this.outstanding.delete(instance);
    };
  }

  /** Attempts that timed out stay recorded until they are certainly dead; then they are forgotten. */
  private forgetExpired(): void {
    const now = this.now();
    for (const [instance, attempts] of this.outstanding) {
      for (const [token, deadline] of attempts) if (deadline + this.clockSkewMs < now) attempts.delete(token);
      if (attempts.size === 0) this.outstanding.delete(instance);
    }
  }

  /** Epoch ms after which no unanswered attempt to `instance` can still be executed by it. */
  clearAt(instance: string): number {
    const attempts = this.outstanding.get(instance);
    if (attempts === undefined) return 0;
    return Math.max(...attempts.values()) + this.clockSkewMs;
  }

  /** When an attempt with `deadline` that got no answer is certainly dead. */
  deadAfter(deadline: number): number {
    return deadline + this.clockSkewMs;
  }

  /** Milliseconds until `instance` is fenced (0 when it already is). */
  waitMs(instance: string): number {
    return Math.max(0, this.clearAt(instance) - this.now());
  }
}

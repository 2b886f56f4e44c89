/**
 * Admission control: what one identity can make the server hold is bounded, and identities share the
 * server fairly. A request is admitted when its identity has fewer than `perIdentityRequests` requests
 * and `perIdentityBytes` bytes in flight and the whole process has room in its memory budget; until
 * then it waits in its identity's queue, and queues are served round-robin, so a flooding identity
 * waits behind itself while others go ahead. A full queue refuses at once (the client backs off and
 * retries): nothing grows without bound.
 */

export interface AdmissionLimits {
  /** Requests one identity may have executing at once. */
  perIdentityRequests: number;
  /** Bytes (request plus the reply it may produce) one identity may have in flight. */
  perIdentityBytes: number;
  /** Requests one identity may have waiting; beyond it requests are refused. */
  perIdentityQueue: number;
  /** Bytes of requests (their frames) waiting, for the whole process. */
  queuedBytes: number;
  /** The process's memory budget for requests in flight and open handles, in bytes. */
  memoryBytes: number;
}

/** Why a request was not admitted. */
export type Refusal = "queue_full";

export interface AdmissionObserver {
  queued(identity: string, depth: number): void;
  refused(identity: string, reason: Refusal): void;
}

/** A slot in flight: call `release` exactly once when the request's reply has been sent. */
export interface Ticket {
  release(): void;
}

interface Waiting {
  cost: number;
  frameBytes: number;
  admit: (ticket: Ticket) => void;
}

interface IdentityState {
  requests: number;
  bytes: number;
  queue: Waiting[];
}

export class Admission {
  private readonly identities = new Map<string, IdentityState>();
  /** Identities with waiting requests, in round-robin order. */
  private readonly ready: string[] = [];
  private bytesInFlight = 0;
  private bytesQueued = 0;
  /** Bytes held outside requests (open handles), charged against the same budget. */
  private bytesHeld = 0;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly observer: AdmissionObserver,
  ) {}

  /** Memory charged right now: requests in flight, their queued frames and held resources. */
  get chargedBytes(): number {
    return this.bytesInFlight + this.bytesQueued + this.bytesHeld;
  }

  get queuedRequests(): number {
    let waiting = 0;
    for (const state of this.identities.values()) waiting += state.queue.length;
    return waiting;
  }

  /**
   * Waits for a slot for a request of `identity` costing `cost` bytes in flight (its frame is
   * `frameBytes` of that while it waits). Resolves with a ticket, or with undefined when refused.
   */
  admit(identity: string, cost: number, frameBytes: number): Promise<Ticket | undefined> {
    const state = this.state(identity);
    if (state.queue.length === 0 && this.fits(state, cost)) return Promise.resolve(this.start(identity, state, cost));
    if (state.queue.length >= this.limits.perIdentityQueue || this.bytesQueued + frameBytes > this.limits.queuedBytes) {
      this.observer.refused(identity, "queue_full");
      this.forgetIfIdle(identity, state);
      return Promise.resolve(undefined);
    }
    return new Promise((admit) => {
      state.queue.push({ cost, frameBytes, admit });
      this.bytesQueued += frameBytes;
      if (state.queue.length === 1) this.ready.push(identity);
      this.observer.queued(identity, state.queue.length);
    });
  }

  /** Charges `bytes` held outside any request (a handle); false when the budget has no room. */
  hold(bytes: number): boolean {
    if (this.chargedBytes + bytes > this.limits.memoryBytes) return false;
    this.bytesHeld += bytes;
    return true;
  }

  unhold(bytes: number): void {
    this.bytesHeld -= bytes;
    this.pump();
  }

  private fits(state: IdentityState, cost: number): boolean {
    // A request larger than a bound on its own still runs when nothing else of its kind does.
    const identityRoom = state.requests === 0 || (state.requests < this.limits.perIdentityRequests && state.bytes + cost <= this.limits.perIdentityBytes);
    const processRoom = this.bytesInFlight === 0 || this.chargedBytes + cost <= this.limits.memoryBytes;
    return identityRoom && processRoom;
  }

  private start(identity: string, state: IdentityState, cost: number): Ticket {
    state.requests += 1;
    state.bytes += cost;
    this.bytesInFlight += cost;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        state.requests -= 1;
        state.bytes -= cost;
        this.bytesInFlight -= cost;
        this.forgetIfIdle(identity, state);
        this.pump();
      },
    };
  }

  /** Admits waiting requests, one identity at a time in turn, while they fit. */
  private pump(): void {
    let blocked = 0;
    while (this.ready.length > 0 && blocked < this.ready.length) {
      const identity = this.ready.shift()!;
      const state = this.identities.get(identity)!;
      const next = state.queue[0]!;
      if (!this.fits(state, next.cost)) {
        this.ready.push(identity);
        blocked += 1;
        continue;
      }
      blocked = 0;
      state.queue.shift();
      this.bytesQueued -= next.frameBytes;
      if (state.queue.length > 0) this.ready.push(identity);
      next.admit(this.start(identity, state, next.cost));
    }
  }

  private state(identity: string): IdentityState {
    let state = this.identities.get(identity);
    if (state === undefined) this.identities.set(identity, (state = { requests: 0, bytes: 0, queue: [] }));
    return state;
  }

  private forgetIfIdle(identity: string, state: IdentityState): void {
    if (state.requests === 0 && state.queue.length === 0) this.identities.delete(identity);
  }
}

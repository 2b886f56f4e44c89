/**
 * Client leases: a client that holds handles renews its lease (the `renew` op, and every other request
 * it sends counts too); the handles of a client whose lease lapsed are reclaimed. A client that was only
 * cut off finds its handles gone when it returns (ESTALE) and re-opens them, as after a server restart.
 */
export class ClientLeases {
  private readonly lastSeen = new Map<string, number>();

  constructor(
    private readonly leaseMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A request from `client` arrived. */
  seen(client: string): void {
    this.lastSeen.set(client, this.now());
  }

  /** True when `client` has not been heard from for a whole lease. */
  lapsed(client: string): boolean {
    const seen = this.lastSeen.get(client);
    return seen === undefined || this.now() - seen > this.leaseMs;
  }

  /** Forgets clients that lapsed (their handles are reclaimed by then). */
  forgetLapsed(): void {
    for (const client of this.lastSeen.keys()) if (this.lapsed(client)) this.lastSeen.delete(client);
  }
}

/** The client part of a request id (`<client id>:<sequence>`). */
export function clientOf(requestId: string): string {
  const colon = requestId.lastIndexOf(":");
  return colon <= 0 ? requestId : requestId.slice(0, colon);
}

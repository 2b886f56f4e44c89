import type { ServerHandle } from "../protocol/index.js";
import type { Rpc } from "./rpc.js";

/** Renewals per lease: a lease survives two lost renewals in a row. */
const RENEWALS_PER_LEASE = 3;

/**
 * Keeps the leases of this client's server handles alive: an instance reclaims the handles of a client
 * not heard from for its lease (it says how long with every handle), so each instance this client
 * holds handles on gets a `renew` (naming one of them) a few times per lease. An instance that is gone
 * needs none: its handles move when next used.
 */
export class LeaseKeeper {
  /** Open server handles per export and instance. */
  private readonly held = new Map<Rpc, Map<string, Set<number>>>();
  private timer: NodeJS.Timeout | undefined;
  private renewEveryMs = Infinity;

  opened(rpc: Rpc, server: ServerHandle): void {
    let instances = this.held.get(rpc);
    if (instances === undefined) this.held.set(rpc, (instances = new Map()));
    let handles = instances.get(server.instance);
    if (handles === undefined) instances.set(server.instance, (handles = new Set()));
    handles.add(server.handle);
    // A server that announces no usable lease is renewed at the protocol's floor rather than never.
    const every = Math.max(1_000, Number.isFinite(server.leaseMs) ? server.leaseMs / RENEWALS_PER_LEASE : 1_000);
    if (every < this.renewEveryMs || this.timer === undefined) {
      this.renewEveryMs = Math.min(every, this.renewEveryMs);
      clearInterval(this.timer);
      this.timer = setInterval(() => this.renewAll(), this.renewEveryMs).unref();
    }
  }

  closed(rpc: Rpc, server: Pick<ServerHandle, "instance" | "handle">): void {
    const instances = this.held.get(rpc);
    const handles = instances?.get(server.instance);
    handles?.delete(server.handle);
    if (handles?.size === 0) instances!.delete(server.instance);
    if (instances?.size === 0) this.held.delete(rpc);
    if (this.held.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.renewEveryMs = Infinity;
  }

  private renewAll(): void {
    for (const [rpc, instances] of this.held) {
      for (const [instance, handles] of instances) {
        const handle = handles.values().next().value!;
        void rpc.call("renew", { handle }, { instance }).catch(() => undefined);
      }
    }
  }
}

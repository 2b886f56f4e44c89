import type { Rpc } from "./rpc.js";

/**
 * Keeps the leases of this client's server handles alive: servers reclaim the handles of a client not
 * heard from for a lease (90 s by default), so every `renewEveryMs` each instance this client holds
 * handles on gets a `renew` (naming one of those handles). An instance that is gone needs none: its
 * handles move when next used.
 */
export class LeaseKeeper {
  /** Open server handles per export and instance. */
  private readonly held = new Map<Rpc, Map<string, Set<number>>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly renewEveryMs: number) {}

  opened(rpc: Rpc, server: { instance: string; handle: number }): void {
    let instances = this.held.get(rpc);
    if (instances === undefined) this.held.set(rpc, (instances = new Map()));
    let handles = instances.get(server.instance);
    if (handles === undefined) instances.set(server.instance, (handles = new Set()));
    handles.add(server.handle);
    this.timer ??= setInterval(() => this.renewAll(), this.renewEveryMs).unref();
  }

  closed(rpc: Rpc, server: { instance: string; handle: number }): void {
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

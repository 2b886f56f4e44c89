import type { NatsConnection } from "nats";
import { FsError, ERRNO } from "../protocol/index.js";
import type { ClientObserver } from "./observer.js";

/**
 * Follows the NATS connection's status so the RPC layer can act on what nats.js does not: requests in
 * flight are not failed on disconnect and requests sent while disconnected are dropped
 * (nats-facts.md). Attempts race `nextDisconnect` and wait in `waitConnected` before re-sending.
 */
export class BusLink {
  private connected = true;
  private onConnected: Array<() => void> = [];
  private disconnectSignal!: Promise<"disconnected">;
  private signalDisconnect!: () => void;

  constructor(
    private readonly nc: NatsConnection,
    private readonly observer: ClientObserver,
  ) {
    this.armDisconnectSignal();
    this.observer.connectionState(true, nc.getServer());
    void this.follow();
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get server(): string | undefined {
    return this.connected ? this.nc.getServer() : undefined;
  }

  /** Resolves at the next disconnect after this call. */
  get nextDisconnect(): Promise<"disconnected"> {
    return this.disconnectSignal;
  }

  /** Waits until the bus is connected, or fails with EIO at `deadline` (epoch ms; Infinity = never). */
  waitConnected(deadline: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer =
        deadline === Infinity
          ? undefined
          : setTimeout(() => {
              this.onConnected = this.onConnected.filter((fn) => fn !== wake);
              reject(new FsError(ERRNO.EIO!, "bus unreachable past the soft-mount timeout"));
            }, Math.max(0, deadline - Date.now()));
      const wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.onConnected.push(wake);
    });
  }

  private armDisconnectSignal(): void {
    this.disconnectSignal = new Promise((resolve) => {
      this.signalDisconnect = () => resolve("disconnected");
    });
  }

  private async follow(): Promise<void> {
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case "disconnect":
        case "staleConnection":
          if (this.connected) {
            this.connected = false;
            this.signalDisconnect();
            this.armDisconnectSignal();
            this.observer.connectionState(false, undefined);
          }
          break;
        case "reconnect": {
          this.connected = true;
          const server = this.nc.getServer();
          this.observer.reconnect(server);
          this.observer.connectionState(true, server);
          const waiting = this.onConnected;
          this.onConnected = [];
          for (const wake of waiting) wake();
          break;
        }
        case "ldm":
          // The server is going away: move now rather than lose requests when it does.
          void this.nc.reconnect().catch(() => undefined);
          break;
        default:
          break;
      }
    }
  }
}

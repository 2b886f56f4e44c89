import type { NatsConnection } from "nats";
import { FsError, ERRNO } from "../protocol/index.js";
import type { ClientObserver } from "./observer.js";

/**
 * Follows the NATS connection's status so the RPC layer can act on what nats.js does not: requests in
 * flight are not failed on disconnect and requests sent while disconnected are dropped
 * (nats-facts.md). Attempts end early through `untilDisconnect` and wait in `waitConnected` before
 * re-sending.
 */
export class BusLink {
  private connected = true;
  private onConnected: Array<() => void> = [];
  private readonly onDisconnect = new Set<() => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly observer: ClientObserver,
  ) {
    this.observer.connectionState(true, nc.getServer());
    void this.follow();
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get server(): string | undefined {
    return this.connected ? this.nc.getServer() : undefined;
  }

  /**
   * Settles like `work`, or with "disconnected" at the next disconnect, whichever comes first. (A
   * Promise.race against one long-lived "next disconnect" promise would keep every reply it ever
   * raced alive until that disconnect.)
   */
  untilDisconnect<T>(work: Promise<T>): Promise<T | "disconnected"> {
    return new Promise((resolve, reject) => {
      const onDisconnect = () => resolve("disconnected");
      this.onDisconnect.add(onDisconnect);
      work.then(
        (value) => {
          this.onDisconnect.delete(onDisconnect);
          resolve(value);
        },
        (err: unknown) => {
          this.onDisconnect.delete(onDisconnect);
          reject(err);
        },
      );
    });
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

  private async follow(): Promise<void> {
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case "disconnect":
        case "staleConnection":
          if (this.connected) {
            this.connected = false;
            const waiting = [...this.onDisconnect];
            this.onDisconnect.clear();
            for (const wake of waiting) wake();
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

import type { OpName } from "../protocol/index.js";
import type { CacheKind } from "./budget.js";

/** Why the client moved a handle or a request to another server instance. */
export type FailoverReason = "no_responders" | "timeout" | "stale_handle" | "disconnected";
/** "misdirected": a reply that answers another request (forged, or a stray) was refused. "refused": the server was at its admission bounds (EAGAIN). */
export type RetryReason = "timeout" | "no_responders" | "disconnected" | "busy" | "damaged" | "misdirected" | "refused";
export type RemapResult = "ok" | "failed";
/** What became of a change notice: applied, this client's own (skipped), damaged, or possibly missed (reconnect). */
export type NoticeResult = "applied" | "own" | "damaged" | "missed";

/**
 * What the client's RPC and VFS layers report as they work. The metrics folder implements it with
 * prom-client; /status reads the same numbers. Every method must be cheap and must not throw.
 */
export interface ClientObserver {
  opStarted(op: OpName): void;
  opFinished(op: OpName, errno: number, seconds: number): void;
  bytesRead(bytes: number): void;
  bytesWritten(bytes: number): void;
  retry(op: OpName, reason: RetryReason): void;
  failover(reason: FailoverReason): void;
  remap(result: RemapResult): void;
  reconnect(server: string): void;
  connectionState(connected: boolean, server: string | undefined): void;
  exportReachable(exportName: string, reachable: boolean): void;
  openHandles(count: number): void;
  lastError(message: string): void;
  /** Bytes the memory budget holds for one kind of use, and the budget itself. */
  cacheBytes(kind: CacheKind, bytes: number): void;
  cacheLimit(bytes: number): void;
  /** A lookup in the attribute cache answered without a round trip, or not. */
  cacheLookup(cache: "attr", hit: boolean): void;
  changeNotice(result: NoticeResult): void;
}

export const NULL_CLIENT_OBSERVER: ClientObserver = {
  opStarted() {},
  opFinished() {},
  bytesRead() {},
  bytesWritten() {},
  retry() {},
  failover() {},
  remap() {},
  reconnect() {},
  connectionState() {},
  exportReachable() {},
  openHandles() {},
  lastError() {},
  cacheBytes() {},
  cacheLimit() {},
  cacheLookup() {},
  changeNotice() {},
};

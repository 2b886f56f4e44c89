import type { OpName } from "../protocol/index.js";

/** Why the client moved a handle or a request to another server instance. */
export type FailoverReason = "no_responders" | "timeout" | "stale_handle" | "disconnected";
export type RetryReason = "timeout" | "no_responders" | "disconnected" | "busy" | "damaged";
export type RemapResult = "ok" | "failed";

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
};

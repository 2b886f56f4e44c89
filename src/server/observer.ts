import type { OpName } from "../protocol/index.js";

export type DenialReason = "no_grant" | "read_only" | "bad_path" | "bad_request" | "unknown_export";

/**
 * What the server's service and export layers report. The metrics folder implements it with
 * prom-client. Every method must be cheap and must not throw.
 */
export interface ServerObserver {
  opFinished(exportName: string, op: OpName, identity: string, errno: number, seconds: number): void;
  bytesRead(exportName: string, bytes: number): void;
  bytesWritten(exportName: string, bytes: number): void;
  openHandles(exportName: string, count: number): void;
  duplicateRequestHit(exportName: string): void;
  denial(exportName: string, identity: string, reason: DenialReason): void;
  malformedRequest(): void;
  /** A request whose seal did not match: damaged on the bus, or delivered on the wrong subject. */
  damagedRequest(exportName: string): void;
  connectionState(connected: boolean, server: string | undefined): void;
}

export const NULL_SERVER_OBSERVER: ServerObserver = {
  opFinished() {},
  bytesRead() {},
  bytesWritten() {},
  openHandles() {},
  duplicateRequestHit() {},
  denial() {},
  malformedRequest() {},
  damagedRequest() {},
  connectionState() {},
};

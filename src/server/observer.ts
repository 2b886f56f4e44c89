import type { OpName } from "../protocol/index.js";

import type { Refusal } from "./admission.js";

export type DenialReason = "no_grant" | "read_only" | "bad_path" | "bad_request" | "unknown_export" | "bad_reply_subject";

/** Log lines an identity can cause, each rate-limited on its own (log-limiter.ts). */
export type LoggedEvent = "no_grant" | "read_only" | "bad_path" | "bad_reply_subject" | "handle_evicted";

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
  /** A request of `identity` waits for admission (admission.ts). */
  requestQueued(identity: string): void;
  /** A request of `identity` was refused at admission (the client backs off and resends). */
  requestRefused(identity: string, reason: Refusal): void;
  /** A request arrived, or waited, past its deadline and was dropped unexecuted. */
  requestExpired(exportName: string, op: OpName): void;
  /** Handles of clients whose lease lapsed were closed. */
  handlesReclaimed(exportName: string, count: number): void;
  /** A log line an identity caused was suppressed by its rate limit. */
  logSuppressed(event: LoggedEvent): void;
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
  requestQueued() {},
  requestRefused() {},
  requestExpired() {},
  handlesReclaimed() {},
  logSuppressed() {},
};

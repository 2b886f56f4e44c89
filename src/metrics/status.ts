import type { FailoverReason, RemapResult } from "../client/observer.js";
import type { DenialReason } from "../server/observer.js";

/** One export as /status shows it; `reachable` is unknown until the client has tried it. */
export interface ExportStatus {
  name: string;
  reachable?: boolean;
  openHandles?: number;
}

export interface LastError {
  message: string;
  at: string;
}

/** What /status returns for either role: plain numbers, cheap to build, stable for `natsfs status`. */
interface StatusCommon {
  version: string;
  identity: string;
  startedAt: string;
  exports: ExportStatus[];
  natsServer?: string;
  connected: boolean;
  openHandles: number;
  ops: { total: number; failed: number };
  bytes: { read: number; written: number };
  lastError?: LastError;
}

export interface ClientStatus extends StatusCommon {
  role: "client";
  /** The client id that prefixes its request ids, when the client has told it. */
  instance?: string;
  opsInFlight: number;
  failovers: Record<FailoverReason, number>;
  remaps: Record<RemapResult, number>;
  retries: number;
  reconnects: number;
}

export interface ServerStatus extends StatusCommon {
  role: "server";
  instance?: string;
  epoch?: string;
  duplicateRequestHits: number;
  denials: Record<DenialReason, number>;
  malformedRequests: number;
  damagedRequests: number;
}

export type NodeStatus = ClientStatus | ServerStatus;

/** Every value of a string union, checked complete by the compiler through `satisfies`. */
export function unionValues<T extends string>(table: Record<T, true>): T[] {
  return Object.keys(table) as T[];
}

export const FAILOVER_REASONS = unionValues<FailoverReason>({
  no_responders: true,
  timeout: true,
  stale_handle: true,
  disconnected: true,
});
export const REMAP_RESULTS = unionValues<RemapResult>({ ok: true, failed: true });
export const DENIAL_REASONS = unionValues<DenialReason>({
  no_grant: true,
  read_only: true,
  bad_path: true,
  bad_request: true,
  unknown_export: true,
  bad_reply_subject: true,
});

export function zeroCounts<T extends string>(keys: readonly T[]): Record<T, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<T, number>;
}

import { DamagedFrameError, ERRNO, MisdirectedReplyError, type OpName } from "../protocol/index.js";
import type { RetryReason } from "./observer.js";

/**
 * Retry policy as pure functions, so it can be tested without a bus.
 */

/** Delay before attempt `attempt` (1-based retry count): capped exponential with full jitter. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** How a failed attempt is handled. */
export type AttemptFailure =
  | { kind: "retry"; reason: RetryReason }
  /** The addressed instance is gone: its handles must move to another instance. */
  | { kind: "instance_gone"; reason: "no_responders" | "timeout" }
  | { kind: "fatal"; errno: number; message: string };

/**
 * Classifies an error thrown by nats.js `request()`. `instanceBound` requests addressed one server
 * instance; after `instanceAttempts` timeouts (or at once on no responders) they give up on it.
 * A `mutating` op the bus refuses is EROFS: the mount only exists because reading was allowed, so the
 * identity's grant is read-only.
 */
export function classifyAttemptError(
  err: unknown,
  instanceBound: boolean,
  attemptsOnInstance: number,
  instanceAttempts: number,
  mutating = false,
): AttemptFailure {
  // A damaged frame says nothing about the instance: send the same request again.
  if (err instanceof DamagedFrameError) return { kind: "retry", reason: "damaged" };
  // Someone else's reply in our inbox: ours may still come, or the request may still run. Ask again.
  if (err instanceof MisdirectedReplyError) return { kind: "retry", reason: "misdirected" };
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case "503":
      return instanceBound ? { kind: "instance_gone", reason: "no_responders" } : { kind: "retry", reason: "no_responders" };
    case "TIMEOUT":
      if (instanceBound && attemptsOnInstance >= instanceAttempts) return { kind: "instance_gone", reason: "timeout" };
      return { kind: "retry", reason: "timeout" };
    case "PERMISSIONS_VIOLATION":
      return mutating
        ? { kind: "fatal", errno: ERRNO.EROFS!, message: `read-only grant: the bus refuses changes: ${message}` }
        : { kind: "fatal", errno: ERRNO.EACCES!, message: `not permitted by the bus: ${message}` };
    case "MAX_PAYLOAD_EXCEEDED":
      return { kind: "fatal", errno: ERRNO.EFBIG!, message: `request larger than the bus allows: ${message}` };
    case "DISCONNECT":
      return { kind: "retry", reason: "disconnected" };
    case "CONNECTION_CLOSED":
    case "CONNECTION_DRAINING":
      return { kind: "fatal", errno: ERRNO.EIO!, message: "the bus connection is closed" };
    default:
      return { kind: "retry", reason: "busy" };
  }
}

/**
 * The errno a non-idempotent op returns when it had already taken effect: a retry that reached a
 * different instance (no duplicate-request cache there) sees the effect of its own first attempt.
 * Clients resolve this as success, as NFS clients do.
 */
export function alreadyDoneErrno(op: OpName): number | undefined {
  switch (op) {
    case "unlink":
    case "rmdir":
    case "rename":
      return ERRNO.ENOENT;
    case "removexattr":
      return ERRNO.ENODATA;
    case "mkdir":
    case "symlink":
    case "link":
    case "mknod":
      return ERRNO.EEXIST;
    default:
      return undefined;
  }
}

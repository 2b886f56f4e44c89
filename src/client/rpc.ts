import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "nats";
import {
  DamagedFrameError,
  DecodeError,
  ERRNO,
  MisdirectedReplyError,
  FsError,
  MAX_DATA_BYTES,
  OPS,
  decodeReply,
  encodeRequest,
  errnoName,
  requestSubject,
  type OpArgs,
  type OpName,
  type OpResult,
  type OpTypes,
  type Reply,
  type RequestIds,
} from "../protocol/index.js";
import type { BusLink } from "./bus-link.js";
import type { ClientObserver } from "./observer.js";
import type { ClientOptions } from "./options.js";
import type { InstanceFence } from "./fence.js";
import { alreadyDoneErrno, backoffDelay, classifyAttemptError } from "./retry.js";

/** The instance a handle-bound request addressed is gone (restarted, killed or frozen). */
export class InstanceGoneError extends Error {
  override readonly name = "InstanceGoneError";
  constructor(
    readonly instance: string,
    readonly reason: "no_responders" | "timeout",
  ) {
    super(`server instance ${instance} is gone (${reason})`);
  }
}

export interface CallOptions {
  /** Send to this server instance (handle-bound ops) instead of the export's queue group. */
  instance?: string;
}

/** Room for the envelope (request id, handle, offset, the seal) around file data. */
const ENVELOPE_ALLOWANCE = 1024;

/** Ops whose one attempt may legitimately take long on the server. */
const SLOW_OPS: ReadonlySet<OpName> = new Set(["fsync", "release", "ftruncate", "truncate"]);
const DATA_OPS: ReadonlySet<OpName> = new Set(["read", "write"]);

/**
 * Request/reply with one export over the bus: one request id for every attempt of a call, per-attempt
 * timeouts, capped backoff, re-sends after reconnects, hard or soft failure semantics.
 */
export class Rpc {
  constructor(
    private readonly nc: NatsConnection,
    private readonly link: BusLink,
    readonly exportName: string,
    private readonly identity: string,
    private readonly ids: RequestIds,
    private readonly observer: ClientObserver,
    private readonly options: ClientOptions,
    private readonly fence: InstanceFence,
  ) {}

  /**
   * File data one read or write request may carry: the protocol's limit, or less when the bus's
   * max_payload is smaller (the envelope needs room too).
   */
  get maxDataBytes(): number {
    const busLimit = (this.nc.info?.max_payload ?? 1024 * 1024) - ENVELOPE_ALLOWANCE;
    return Math.max(4096, Math.min(MAX_DATA_BYTES, busLimit));
  }

  async call<O extends OpName & keyof OpTypes>(op: O, args: OpArgs<O>, callOptions: CallOptions = {}): Promise<OpResult<O>> {
    const started = performance.now();
    this.observer.opStarted(op);
    try {
      const result = await this.attempt(op, args, callOptions);
      this.observer.opFinished(op, 0, (performance.now() - started) / 1000);
      this.observer.exportReachable(this.exportName, true);
      return result;
    } catch (err) {
      const errno = err instanceof FsError ? err.errno : ERRNO.EIO!;
      this.observer.opFinished(op, errno, (performance.now() - started) / 1000);
      if (!(err instanceof FsError) || errno === ERRNO.EIO) this.observer.lastError(`${op}: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Waits until every attempt this client sent to `instance` and got no answer for is certainly dead. */
  async fenced(instance: string): Promise<void> {
    const wait = this.fence.waitMs(instance);
    if (wait > 0) await sleep(wait);
  }

  private async attempt<O extends OpName & keyof OpTypes>(op: O, args: OpArgs<O>, { instance }: CallOptions): Promise<OpResult<O>> {
    const subject = requestSubject(this.exportName, this.identity, op, instance);
    const id = this.ids.next();
    const timeout = SLOW_OPS.has(op)
      ? this.options.slowAttemptTimeoutMs
      : DATA_OPS.has(op)
        ? this.options.dataAttemptTimeoutMs
        : this.options.attemptTimeoutMs;
    const giveUpAt = this.options.softTimeoutMs === undefined ? Infinity : Date.now() + this.options.softTimeoutMs;
    let attempts = 0;
    for (;;) {
      await this.link.waitConnected(giveUpAt);
      attempts += 1;
      const deadline = Date.now() + timeout;
      const answered = instance === undefined || !OPS[op].fenced ? undefined : this.fence.sent(instance, deadline);
      let failure: unknown;
      try {
        const payload = encodeRequest({ id, deadline, args }, subject);
        const outcome = await this.link.untilDisconnect(this.nc.request(subject, payload, { timeout }));
        if (outcome === "disconnected") {
          failure = Object.assign(new Error("bus disconnected"), { code: "DISCONNECT" });
        } else {
          const reply = decodeReply<OpResult<O>>(outcome.data, outcome.subject, id);
          answered?.();
          return this.unwrap(op, reply, attempts);
        }
      } catch (err) {
        if (err instanceof FsError) throw err;
        if (err instanceof DecodeError && !(err instanceof DamagedFrameError) && !(err instanceof MisdirectedReplyError)) {
          throw new FsError(ERRNO.EIO!, `${op}: ${err.message}`);
        }
        failure = err;
        // No responders: the attempt reached no server, so nothing of it can land later.
        if ((err as { code?: unknown }).code === "503") answered?.();
      }
      const verdict = classifyAttemptError(failure, instance !== undefined, attempts, this.options.instanceAttempts, OPS[op].mutating);
      if (verdict.kind === "fatal") throw new FsError(verdict.errno, `${op} on ${this.exportName}: ${verdict.message}`);
      if (verdict.kind === "instance_gone") throw new InstanceGoneError(instance!, verdict.reason);
      this.observer.retry(op, verdict.reason);
      if (verdict.reason === "timeout" || verdict.reason === "no_responders") this.observer.exportReachable(this.exportName, false);
      // An attempt that got no answer may still be executed until its deadline (plus clock skew): it is
      // not re-sent, possibly to another instance, before then, so it can never land after its retry.
      const unanswered = verdict.reason === "timeout" || verdict.reason === "disconnected" || verdict.reason === "misdirected";
      const fenceDelay = unanswered && OPS[op].fenced ? this.fence.deadAfter(deadline) - Date.now() : 0;
      const delay = Math.max(fenceDelay, backoffDelay(attempts, this.options.backoffBaseMs, this.options.backoffCapMs));
      if (Date.now() + delay > giveUpAt) {
        throw new FsError(ERRNO.EIO!, `${op} on ${this.exportName}: no answer within the soft-mount timeout`);
      }
      await sleep(delay);
    }
  }

  private unwrap<O extends OpName & keyof OpTypes>(op: O, reply: Reply<OpResult<O>>, attempts: number): OpResult<O> {
    if (reply.damaged) throw new DamagedFrameError(`${op} on ${this.exportName}: ${reply.message ?? "request damaged in transit"}`);
    if (reply.errno === 0) return reply.result as OpResult<O>;
    if (attempts > 1 && !OPS[op].idempotent && alreadyDoneErrno(op) === reply.errno) {
      // Our first attempt took effect on an instance that did not answer: the op is done.
      return null as OpResult<O>;
    }
    throw new FsError(reply.errno, `${op} on ${this.exportName}: ${reply.message ?? errnoName(reply.errno)}`);
  }
}

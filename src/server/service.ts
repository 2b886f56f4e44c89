import { Events, type Msg, type NatsConnection, type Subscription } from "nats";
import type { Logger } from "pino";
import {
  DISCOVERY_SUBSCRIPTION,
  DamagedFrameError,
  DecodeError,
  ERRNO,
  FsError,
  OPS,
  decodeRequest,
  encodeDiscoveryReply,
  encodeReply,
  errnoName,
  errnoOf,
  isInboxOf,
  parseDiscoverySubject,
  parseRequestSubject,
  queueGroup,
  randomId,
  SEAL_BYTES,
  sealFrame,
  serverSubscriptions,
  type DiscoveryReply,
  type OpArgs,
  type OpName,
  type ParsedSubject,
} from "../protocol/index.js";
import { Admission } from "./admission.js";
import { parseArgs } from "./args.js";
import type { AccessPolicy, ExportConfig, ServerOptions } from "./config.js";
import { PathRefused } from "./confine.js";
import { DuplicateRequestCache } from "./drc.js";
import { ExportFs, type CallContext } from "./export.js";
import type { EvictionReason, HandleEntry } from "./handles.js";
import { ClientLeases, clientOf } from "./leases.js";
import { LogLimiter } from "./log-limiter.js";
import { ChangeNotices } from "./notices.js";
import type { LoggedEvent, ServerObserver } from "./observer.js";

/**
 * A reply body ready to be sealed for the inbox it goes to, with its errno kept for the observer (also
 * on a duplicate-request hit).
 */
interface EncodedReply {
  bytes: Uint8Array;
  errno: number;
}

/** NATS's default max_payload, used until the connection reports the server's own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Replies at least this large hold their admission slot until the bus has them (FsService.onTheWire). */
const LARGE_REPLY_BYTES = 64 * 1024;

/** What a request of an op costs in flight besides its own frame: the largest reply it may produce. */
function replyAllowance<O extends OpName>(op: O, args: OpArgs<O>, options: ServerOptions): number {
  switch (op) {
    case "read":
      return (args as OpArgs<"read">).length;
    case "readdir":
      return options.maxListingBytes;
    case "getxattr":
    case "listxattr":
      return 64 * 1024;
    default:
      return 1024;
  }
}

export interface ServiceParams {
  nc: NatsConnection;
  exports: readonly ExportConfig[];
  /** Consulted on every request, so a reloaded policy (SIGHUP) applies at once. */
  policy: AccessPolicy;
  observer: ServerObserver;
  options: ServerOptions;
  logger: Logger;
}

export interface ExportStatus {
  name: string;
  readOnly: boolean;
  squash: ExportConfig["squash"];
  openHandles: number;
}

export interface ServerStatus {
  instance: string;
  epoch: string;
  connected: boolean;
  server: string | undefined;
  inFlight: number;
  requests: number;
  queued: number;
  chargedBytes: number;
  duplicateRequestEntries: number;
  exports: ExportStatus[];
}

/**
 * The NATS side of a server: subscriptions per export, request validation, policy, admission control,
 * the duplicate-request cache, client leases and replies. Every request that comes from an identity's
 * own inbox gets a reply there, errors included; nothing is ever sent into another identity's inbox.
 */
export class FsService {
  readonly instance = randomId();
  readonly epoch = randomId();
  private readonly exports: ExportFs[];
  private readonly drc: DuplicateRequestCache<EncodedReply>;
  private readonly admission: Admission;
  private readonly leases: ClientLeases;
  private readonly notices: ChangeNotices;
  private readonly logs: LogLimiter<LoggedEvent>;
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private reclaimTimer: NodeJS.Timeout | undefined;
  /** The flush under way, and the one queued behind it for replies sent since it started. */
  private flushing: Promise<void> | undefined;
  private nextFlush: Promise<void> | undefined;
  private requests = 0;
  private stopping = false;
  private connected = true;

  constructor(private readonly params: ServiceParams) {
    const { exports, options, observer } = params;
    this.admission = new Admission(options.admission, {
      queued: (identity) => observer.requestQueued(identity),
      refused: (identity, reason) => observer.requestRefused(identity, reason),
    });
    this.leases = new ClientLeases(options.leaseMs);
    this.notices = new ChangeNotices(params.nc);
    this.logs = new LogLimiter(options.logLimits, (event) => observer.logSuppressed(event));
    this.exports = exports.map(
      (config) =>
        new ExportFs(config, this, options, observer, {
          budget: this.admission,
          handleEvicted: (entry, reason) => this.handleEvicted(config.name, entry, reason),
        }),
    );
    this.drc = new DuplicateRequestCache(options.drcEntries, options.drcTtlMs);
  }

  async start(): Promise<void> {
    const { nc, observer } = this.params;
    for (const fs of this.exports) {
      const { shared, own } = serverSubscriptions(fs.name, this.instance);
      const callback = (err: Error | null, msg: Msg) => {
        if (err) {
          this.params.logger.error({ err, export: fs.name }, "subscription failed");
          return;
        }
        this.track(this.onMessage(fs, msg));
      };
      this.subscriptions.push(nc.subscribe(shared, { queue: queueGroup(fs.name), callback }));
      this.subscriptions.push(nc.subscribe(own, { callback }));
    }
    this.subscriptions.push(
      nc.subscribe(DISCOVERY_SUBSCRIPTION, {
        callback: (err, msg) => {
          if (!err) this.onDiscovery(msg);
        },
      }),
    );
    await nc.flush();
    observer.connectionState(true, nc.getServer());
    this.reclaimTimer = setInterval(() => this.reclaimLapsedHandles(), Math.max(1_000, this.params.options.leaseMs / 4));
    this.reclaimTimer.unref();
    this.watchConnection().catch((err: unknown) => this.params.logger.error({ err }, "connection status watch failed"));
  }

  /** Stops taking requests, lets the ones in flight finish, then closes every handle. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.reclaimTimer);
    await Promise.allSettled(this.subscriptions.map((sub) => (sub.isClosed() ? undefined : sub.drain())));
    await Promise.allSettled([...this.inFlight]);
    await Promise.all(this.exports.map((fs) => fs.close()));
  }

  status(): ServerStatus {
    const { nc } = this.params;
    return {
      instance: this.instance,
      epoch: this.epoch,
      connected: this.connected && !nc.isClosed(),
      server: nc.getServer() || undefined,
      inFlight: this.inFlight.size,
      requests: this.requests,
      queued: this.admission.queuedRequests,
      chargedBytes: this.admission.chargedBytes,
      duplicateRequestEntries: this.drc.size,
      exports: this.exports.map((fs) => ({
        name: fs.name,
        readOnly: fs.config.readOnly,
        squash: fs.config.squash,
        openHandles: fs.handles.size,
      })),
    };
  }

  /**
   * Resolves once everything published so far has reached nats-server (a PING answered by its PONG).
   * Callers share round trips: one that arrives while a flush is under way waits for the next one,
   * which starts when that one ends and serves everyone who arrived meanwhile. A closed connection
   * ends the wait too.
   */
  private onTheWire(): Promise<void> {
    if (this.nextFlush !== undefined) return this.nextFlush;
    const flush = (): Promise<void> => {
      const current: Promise<void> = this.params.nc
        .flush()
        .catch(() => undefined)
        .finally(() => {
          if (this.flushing === current) this.flushing = undefined;
        });
      this.flushing = current;
      return current;
    };
    if (this.flushing === undefined) return flush();
    this.nextFlush = this.flushing.then(() => {
      this.nextFlush = undefined;
      return flush();
    });
    return this.nextFlush;
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Writes a log line an identity can cause, unless that kind of line is over its rate. */
  private logLimited(event: LoggedEvent, level: "info" | "warn", fields: Record<string, unknown>, message: string): void {
    const { write, suppressed } = this.logs.admit(event);
    if (!write) return;
    this.params.logger[level](suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields, message);
  }

  private handleEvicted(exportName: string, entry: HandleEntry, reason: EvictionReason): void {
    if (reason === "lease_lapsed") return; // counted per sweep
    this.logLimited("handle_evicted", "info", { export: exportName, identity: entry.identity, reason }, "closed a least recently used handle to make room");
  }

  private reclaimLapsedHandles(): void {
    for (const fs of this.exports) {
      const reclaimed = fs.handles.reclaim((client) => this.leases.lapsed(client));
      if (reclaimed > 0) {
        this.params.observer.handlesReclaimed(fs.name, reclaimed);
        this.params.logger.info({ export: fs.name, reclaimed }, "reclaimed the handles of clients whose lease lapsed");
      }
    }
    this.leases.forgetLapsed();
  }

  private async watchConnection(): Promise<void> {
    const { nc, observer, logger } = this.params;
    for await (const event of nc.status()) {
      if (event.type === Events.Disconnect) {
        this.connected = false;
        observer.connectionState(false, String(event.data));
        logger.warn({ server: event.data }, "disconnected from nats-server");
      } else if (event.type === Events.Reconnect) {
        this.connected = true;
        observer.connectionState(true, String(event.data));
        logger.info({ server: event.data }, "reconnected to nats-server");
      } else if (event.type === Events.LDM) {
        // The node is going away: move the subscriptions now, so no request is routed to it meanwhile.
        logger.info({ server: nc.getServer() }, "nats-server entering lame duck mode: reconnecting elsewhere");
        nc.reconnect().catch((err: unknown) => logger.warn({ err: (err as Error).message }, "reconnect after lame duck notice failed"));
      }
    }
  }

  /** Tells an identity which of this server's exports it is granted, and nothing about the others. */
  private onDiscovery(msg: Msg): void {
    const identity = parseDiscoverySubject(msg.subject);
    if (identity === undefined || !msg.reply || !isInboxOf(identity, msg.reply)) {
      this.params.observer.malformedRequest();
      return;
    }
    const { policy } = this.params;
    const answer: DiscoveryReply = {
      instance: this.instance,
      epoch: this.epoch,
      exports: this.exports.flatMap((fs) => {
        const grant = policy.grant(identity, fs.name);
        return grant === undefined ? [] : [{ name: fs.name, readOnly: grant === "ro" || fs.config.readOnly }];
      }),
    };
    if (answer.exports.length > 0) this.respond(msg, encodeDiscoveryReply(answer));
  }

  private async onMessage(fs: ExportFs, msg: Msg): Promise<void> {
    this.requests += 1;
    const started = performance.now();
    const { observer, logger } = this.params;
    const subject = parseRequestSubject(msg.subject);
    if (!msg.reply || subject === undefined || subject.exportName !== fs.name) {
      observer.malformedRequest();
      return;
    }
    if (!isInboxOf(subject.identity, msg.reply)) {
      // Answering would put a reply, ours or a forged request's, into another identity's inbox.
      observer.denial(fs.name, subject.identity, "bad_reply_subject");
      this.logLimited("bad_reply_subject", "warn", { export: fs.name, identity: subject.identity, op: subject.op }, "denied: reply subject is not the identity's own inbox");
      return;
    }
    const reply = await this.serve(fs, subject, msg.subject, msg.data);
    this.respond(msg, reply.bytes);
    // A reply handed to nats.js is still this process's memory until it is on the wire: a large one
    // keeps its admission slot until the bus has taken it, so a client that never reads its replies
    // cannot pile them up here.
    if (reply.release !== undefined && reply.bytes.length >= LARGE_REPLY_BYTES) await this.onTheWire();
    reply.release?.();
    observer.opFinished(fs.name, subject.op, subject.identity, reply.errno, (performance.now() - started) / 1000);
    if (reply.errno !== 0) logger.debug({ export: fs.name, identity: subject.identity, op: subject.op, errno: errnoName(reply.errno) }, "op failed");
  }

  /** Everything between a parsed subject and the encoded reply; never throws. */
  private async serve(fs: ExportFs, subject: ParsedSubject, subjectName: string, frame: Uint8Array): Promise<EncodedReply & { release?: () => void }> {
    const { observer, policy, logger, options } = this.params;
    const { op, identity } = subject;

    let request: { id: string; deadline: number; args: Record<string, unknown> };
    try {
      request = decodeRequest(frame, subjectName);
    } catch (err) {
      if (err instanceof DamagedFrameError) {
        // Not acted on: the client sends it again (non-idempotent ops are safe through the cache).
        // Counted, and logged at debug only: any identity can send damaged frames, and must not be
        // able to flood the log with them.
        observer.damagedRequest(fs.name);
        logger.debug({ export: fs.name, identity, op, bytes: frame.length }, "request damaged in transit: asking for it again");
        const bytes = encodeReply({ id: "", errno: ERRNO.EBADMSG!, instance: this.instance, epoch: this.epoch, message: err.message, damaged: true });
        return { bytes, errno: ERRNO.EBADMSG! };
      }
      observer.malformedRequest();
      return this.refusal("", ERRNO.EINVAL!, err instanceof DecodeError ? err.message : "malformed request");
    }
    const { id, deadline } = request;
    const parsed = parseArgs(op, request.args);
    if (!parsed.ok) {
      observer.denial(fs.name, identity, "bad_request");
      return this.refusal(id, ERRNO.EINVAL!, parsed.reason);
    }

    const grant = policy.grant(identity, fs.name);
    if (grant === undefined) {
      observer.denial(fs.name, identity, "no_grant");
      this.logLimited("no_grant", "warn", { identity, export: fs.name, op }, "denied: no grant");
      return this.refusal(id, ERRNO.EACCES!, `identity ${identity} has no grant on export ${fs.name}`);
    }
    const writable = grant === "rw" && !fs.config.readOnly;
    if (OPS[op].mutating && !writable) {
      observer.denial(fs.name, identity, "read_only");
      this.logLimited("read_only", "info", { identity, export: fs.name, op }, "denied: read-only");
      return this.refusal(id, ERRNO.EROFS!, `export ${fs.name} is read-only for ${identity}`);
    }
    if (OPS[op].handleBound && subject.instance !== this.instance) {
      return this.refusal(id, ERRNO.ESTALE!, "handle belongs to another server instance");
    }

    const client = clientOf(id);
    this.leases.seen(client);
    const ticket = await this.admission.admit(identity, frame.length + replyAllowance(op, parsed.args, options), frame.length);
    if (ticket === undefined) {
      const bytes = encodeReply({ id, errno: ERRNO.EAGAIN!, instance: this.instance, epoch: this.epoch, message: "server busy: too many requests from this identity", busy: true });
      return { bytes, errno: ERRNO.EAGAIN! };
    }
    const release = () => ticket.release();
    if (Date.now() > deadline) {
      // The client has given up on this attempt (it may have been queued here, or frozen with us).
      observer.requestExpired(fs.name, op);
      return { ...this.refusal(id, ERRNO.ETIMEDOUT!, "request arrived past its deadline"), release };
    }

    const context: CallContext = { identity, client, writable, deadline };
    const execute = async () => {
      const reply = await this.execute(fs, op, parsed.args, context, id);
      // Before the reply goes out, so other clients hear of the change no later than the asker.
      if (reply.errno === 0 && OPS[op].mutating) await this.notices.changed(fs, op, parsed.args, context);
      return reply;
    };
    try {
      if (OPS[op].idempotent) return { ...(await execute()), release };
      const key = `${fs.name}\0${identity}\0${op}\0${id}`;
      const { reply, hit } = await this.drc.run(key, execute);
      if (hit) observer.duplicateRequestHit(fs.name);
      return { ...reply, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  private async execute<O extends OpName>(fs: ExportFs, op: O, args: OpArgs<O>, context: CallContext, id: string): Promise<EncodedReply> {
    try {
      const result = await fs.call(op, args, context);
      const bytes = encodeReply({ id, errno: 0, instance: this.instance, epoch: this.epoch, result });
      if (bytes.length + SEAL_BYTES <= this.maxPayload()) return { bytes, errno: 0 };
      return this.refusal(id, ERRNO.EMSGSIZE!, `${op} reply of ${bytes.length} bytes exceeds max_payload`);
    } catch (err) {
      const errno = errnoOf(err);
      if (err instanceof PathRefused) {
        this.params.observer.denial(fs.name, context.identity, "bad_path");
        this.logLimited("bad_path", "warn", { identity: context.identity, export: fs.name, op, reason: err.message }, "denied: bad path");
      } else if (errno === ERRNO.EIO && !(err instanceof FsError)) {
        this.params.logger.error({ err, export: fs.name, op }, "op failed unexpectedly");
      }
      // Node's own messages name server-side paths (/proc/self/fd/...): only ours are passed on.
      return this.refusal(id, errno, err instanceof FsError ? err.message : `${op}: ${errnoName(errno)}`);
    }
  }

  private maxPayload(): number {
    return this.params.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  private refusal(id: string, errno: number, message: string): EncodedReply {
    return { bytes: encodeReply({ id, errno, instance: this.instance, epoch: this.epoch, message }), errno };
  }

  /** Sends a reply body sealed for the inbox that asked. */
  private respond(msg: Msg, body: Uint8Array): void {
    try {
      msg.respond(sealFrame(body, msg.reply!));
    } catch (err) {
      this.params.logger.error({ err, subject: msg.subject }, "could not send reply");
    }
  }
}

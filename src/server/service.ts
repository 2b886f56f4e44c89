import { Events, type Msg, type NatsConnection, type Service, type Subscription } from "nats";
import type { Logger } from "pino";
import {
  DamagedFrameError,
  DecodeError,
  ERRNO,
  FsError,
  OPS,
  SERVICE_NAME,
  decodeRequest,
  encodeReply,
  errnoName,
  errnoOf,
  parseRequestSubject,
  queueGroup,
  randomId,
  SEAL_BYTES,
  sealFrame,
  serverSubscriptions,
  type OpArgs,
  type OpName,
  type ParsedSubject,
} from "../protocol/index.js";
import { parseArgs } from "./args.js";
import type { AccessPolicy, ExportConfig, ServerOptions } from "./config.js";
import { PathRefused } from "./confine.js";
import { DuplicateRequestCache } from "./drc.js";
import { ExportFs, type CallContext } from "./export.js";
import type { ServerObserver } from "./observer.js";

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

export interface ServiceParams {
  nc: NatsConnection;
  exports: readonly ExportConfig[];
  policy: AccessPolicy;
  observer: ServerObserver;
  options: ServerOptions;
  logger: Logger;
  /** Announced in the NATS service registration (semver). */
  version: string;
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
  duplicateRequestEntries: number;
  exports: ExportStatus[];
}

/**
 * The NATS side of a server: subscriptions per export, request validation, policy, the
 * duplicate-request cache and replies. Every request gets a reply, errors included.
 */
export class FsService {
  readonly instance = randomId();
  readonly epoch = randomId();
  private readonly exports: ExportFs[];
  private readonly drc: DuplicateRequestCache<EncodedReply>;
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private microService: Service | undefined;
  private requests = 0;
  private stopping = false;
  private connected = true;

  constructor(private readonly params: ServiceParams) {
    const { exports, options, observer } = params;
    this.exports = exports.map((config) => new ExportFs(config, this, options, observer, params.logger));
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
    await nc.flush();
    this.microService = await nc.services.add({
      name: SERVICE_NAME,
      version: this.params.version,
      description: "natsfs file server",
      metadata: { instance: this.instance, epoch: this.epoch, exports: this.exports.map((e) => e.name).join(",") },
    });
    observer.connectionState(true, nc.getServer());
    this.watchConnection().catch((err: unknown) => this.params.logger.error({ err }, "connection status watch failed"));
  }

  /** Stops taking requests, lets the ones in flight finish, then closes every handle. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.allSettled(this.subscriptions.map((sub) => (sub.isClosed() ? undefined : sub.drain())));
    await this.microService?.stop().catch(() => undefined);
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
      duplicateRequestEntries: this.drc.size,
      exports: this.exports.map((fs) => ({
        name: fs.name,
        readOnly: fs.config.readOnly,
        squash: fs.config.squash,
        openHandles: fs.handles.size,
      })),
    };
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
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

  private async onMessage(fs: ExportFs, msg: Msg): Promise<void> {
    this.requests += 1;
    const started = performance.now();
    const { observer, logger } = this.params;
    if (!msg.reply) {
      observer.malformedRequest();
      return;
    }
    const subject = parseRequestSubject(msg.subject);
    if (subject === undefined || subject.exportName !== fs.name) {
      observer.malformedRequest();
      this.respond(msg, this.errorReply(ERRNO.ENOSYS!, "not a natsfs request subject"));
      return;
    }
    const reply = await this.serve(fs, subject, msg.subject, msg.data);
    this.respond(msg, reply.bytes);
    observer.opFinished(fs.name, subject.op, subject.identity, reply.errno, (performance.now() - started) / 1000);
    if (reply.errno !== 0) logger.debug({ export: fs.name, identity: subject.identity, op: subject.op, errno: errnoName(reply.errno) }, "op failed");
  }

  /** Everything between a parsed subject and the encoded reply; never throws. */
  private async serve(fs: ExportFs, subject: ParsedSubject, subjectName: string, frame: Uint8Array): Promise<EncodedReply> {
    const { observer, policy, logger } = this.params;
    const { op, identity } = subject;
    const refuse = (errno: number, message: string): EncodedReply => ({ bytes: this.errorReply(errno, message), errno });

    let request: { id: string; args: Record<string, unknown> };
    try {
      request = decodeRequest(frame, subjectName);
    } catch (err) {
      if (err instanceof DamagedFrameError) {
        // Not acted on: the client sends it again (non-idempotent ops are safe through the cache).
        // Counted, and logged at debug only: any identity can send damaged frames, and must not be
        // able to flood the log with them.
        observer.damagedRequest(fs.name);
        logger.debug({ export: fs.name, identity, op, bytes: frame.length }, "request damaged in transit: asking for it again");
        const bytes = encodeReply({ errno: ERRNO.EBADMSG!, instance: this.instance, epoch: this.epoch, message: err.message, damaged: true });
        return { bytes, errno: ERRNO.EBADMSG! };
      }
      observer.malformedRequest();
      return refuse(ERRNO.EINVAL!, err instanceof DecodeError ? err.message : "malformed request");
    }
    const parsed = parseArgs(op, request.args);
    if (!parsed.ok) {
      observer.denial(fs.name, identity, "bad_request");
      return refuse(ERRNO.EINVAL!, parsed.reason);
    }

    const grant = policy.grant(identity, fs.name);
    if (grant === undefined) {
      observer.denial(fs.name, identity, "no_grant");
      logger.warn({ identity, export: fs.name, op }, "denied: no grant");
      return refuse(ERRNO.EACCES!, `identity ${identity} has no grant on export ${fs.name}`);
    }
    const writable = grant === "rw" && !fs.config.readOnly;
    if (OPS[op].mutating && !writable) {
      observer.denial(fs.name, identity, "read_only");
      logger.info({ identity, export: fs.name, op }, "denied: read-only");
      return refuse(ERRNO.EROFS!, `export ${fs.name} is read-only for ${identity}`);
    }
    if (OPS[op].handleBound && subject.instance !== this.instance) {
      return refuse(ERRNO.ESTALE!, "handle belongs to another server instance");
    }

    const context: CallContext = { identity, writable };
    const execute = () => this.execute(fs, op, parsed.args, context);
    if (OPS[op].idempotent) return execute();
    const key = `${fs.name}\0${identity}\0${op}\0${request.id}`;
    const { reply, hit } = await this.drc.run(key, execute);
    if (hit) observer.duplicateRequestHit(fs.name);
    return reply;
  }

  private async execute<O extends OpName>(fs: ExportFs, op: O, args: OpArgs<O>, context: CallContext): Promise<EncodedReply> {
    try {
      const result = await fs.call(op, args, context);
      const bytes = encodeReply({ errno: 0, instance: this.instance, epoch: this.epoch, result });
      if (bytes.length + SEAL_BYTES <= this.maxPayload()) return { bytes, errno: 0 };
      return { bytes: this.errorReply(ERRNO.EMSGSIZE!, `${op} reply of ${bytes.length} bytes exceeds max_payload`), errno: ERRNO.EMSGSIZE! };
    } catch (err) {
      const errno = errnoOf(err);
      if (err instanceof PathRefused) {
        this.params.observer.denial(fs.name, context.identity, "bad_path");
        this.params.logger.warn({ identity: context.identity, export: fs.name, op, reason: err.message }, "denied: bad path");
      } else if (errno === ERRNO.EIO && !(err instanceof FsError)) {
        this.params.logger.error({ err, export: fs.name, op }, "op failed unexpectedly");
      }
      // Node's own messages name server-side paths (/proc/self/fd/...): only ours are passed on.
      return { bytes: this.errorReply(errno, err instanceof FsError ? err.message : `${op}: ${errnoName(errno)}`), errno };
    }
  }

  private maxPayload(): number {
    return this.params.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  private errorReply(errno: number, message: string): Uint8Array {
    return encodeReply({ errno, instance: this.instance, epoch: this.epoch, message });
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

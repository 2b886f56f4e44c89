import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import { inboxPrefix, isToken } from "../protocol/index.js";
import { explainConnectError, tlsConnectOptions } from "../security/index.js";
import { UsageError } from "./common.js";

export interface BusFlags {
  nats: string;
  pki?: string;
  identity?: string;
  insecure?: boolean;
}

/**
 * Connection settings every natsfs process uses: never give up reconnecting, and keep replies on the
 * identity's private inbox (see nats-facts.md).
 *
 * Liveness: a nats-server that dies closes the socket and is noticed at once; only a frozen or cut-off
 * one needs pings. A busy peer must not look frozen, because a reconnect is far from free: it stalls
 * every op for seconds, and nats.js 2.29 can then feed the rest of the old socket's buffered data
 * (the tail of a large message) into the new connection's parser (protocol.js `dial`: the old reader
 * loop calls `this.parser.parse`, and `prepare()` has already swapped in a new parser), which closes
 * that connection too with "parse error [0]: <binary data>". With pings every 1 s and 3 outstanding
 * allowed, a mount whose event loop lagged 3 s under load (load average 5 on 2 cores) was declared
 * stale every few seconds. A frozen peer is now declared dead after 4 unanswered pings 3 s apart
 * (12-15 s); requests in flight meanwhile are retried by the RPC layer as before.
 */
export const BUS_DEFAULTS = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  pingInterval: 3000,
  maxPingOut: 4,
  timeout: 5000,
} as const satisfies Partial<ConnectionOptions>;

/** Identity of a plain (--insecure) connection that names none. */
const ANONYMOUS = "anonymous";

function busOptions(flags: BusFlags): { options: ConnectionOptions; identity: string } {
  const servers = flags.nats.split(",").map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) throw new UsageError("--nats needs at least one URL");
  if (flags.identity !== undefined && !isToken(flags.identity)) {
    throw new UsageError(`--identity "${flags.identity}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
  }
  if (flags.insecure) {
    process.stderr.write("natsfs: WARNING: --insecure: plain NATS, no encryption and no authentication\n");
    const identity = flags.identity ?? ANONYMOUS;
    return { identity, options: { ...BUS_DEFAULTS, servers, inboxPrefix: inboxPrefix(identity) } };
  }
  if (flags.pki === undefined || flags.identity === undefined) {
    throw new UsageError("the bus needs TLS: pass --pki DIR --identity NAME (or --insecure for a plain local test bus)");
  }
  const tls = tlsConnectOptions(flags.pki, flags.identity);
  return { identity: flags.identity, options: { ...BUS_DEFAULTS, servers, inboxPrefix: inboxPrefix(flags.identity), tls } };
}

/**
 * Connects to the bus as `flags.identity` over mutual TLS (or plain NATS with --insecure).
 * A first attempt without reconnecting turns a refused certificate or unknown identity into a clear
 * error at once; with reconnecting on, nats.js would retry it silently until the connect timeout.
 */
export async function connectBus(flags: BusFlags, name: string): Promise<{ nc: NatsConnection; identity: string }> {
  const { options, identity } = busOptions(flags);
  const context = flags.pki === undefined || flags.insecure ? { servers: flags.nats, identity } : { servers: flags.nats, identity, pkiDir: flags.pki };
  try {
    const probe = await connect({ ...options, name: `${name} (probe)`, reconnect: false });
    await probe.close();
    return { nc: await connect({ ...options, name }), identity };
  } catch (err) {
    throw new Error(explainConnectError(err, context), { cause: err });
  }
}

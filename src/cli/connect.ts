import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import { inboxPrefix } from "../protocol/index.js";
import { UsageError } from "./common.js";

export interface BusFlags {
  nats: string;
  pki?: string;
  identity?: string;
  insecure?: boolean;
}

/**
 * Connection settings every natsfs process uses: never give up reconnecting, notice a dead or frozen
 * nats-server within seconds, and keep replies on the identity's private inbox (see nats-facts.md).
 */
export const BUS_DEFAULTS = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  pingInterval: 1000,
  maxPingOut: 3,
  timeout: 5000,
} as const satisfies Partial<ConnectionOptions>;

export async function connectBus(flags: BusFlags, name: string): Promise<{ nc: NatsConnection; identity: string }> {
  const servers = flags.nats.split(",").map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) throw new UsageError("--nats needs at least one URL");
  if (!flags.insecure) {
    // TLS wiring lands with the security work; until then only --insecure connects.
    throw new UsageError("TLS is not available yet: pass --insecure");
  }
  process.stderr.write("natsfs: WARNING: --insecure: plain NATS, no encryption and no authentication\n");
  const identity = flags.identity ?? "anonymous";
  const nc = await connect({ ...BUS_DEFAULTS, servers, name, inboxPrefix: inboxPrefix(identity) });
  return { nc, identity };
}

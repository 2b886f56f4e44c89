// One side of the bus ceiling measurement, as its own process (natsfs's server and mount are separate
// processes too): a responder that answers every request on a subject with a reply of a given size, or
// a requester that keeps a number of requests of a given size in flight for a while and prints
// `{"requests": N, "seconds": S}`. Both join the bus as natsfs does: mutual TLS with the stack's PKI,
// the requester on its identity's private inbox.
//
//   node --import tsx test/bench/lib/bus-peer.ts '<json of PeerArgs>'
import { connect, type NatsConnection } from "nats";
import { z } from "zod";
import { inboxPrefix } from "../../../src/protocol/index.js";
import { tlsConnectOptions } from "../../../src/security/index.js";

export const PeerArgs = z.object({
  role: z.enum(["respond", "request"]),
  url: z.string(),
  pki: z.string(),
  identity: z.string(),
  subject: z.string(),
  requestBytes: z.number().int().positive(),
  replyBytes: z.number().int().positive(),
  seconds: z.number().positive(),
  inFlight: z.number().int().positive(),
});
export type PeerArgs = z.infer<typeof PeerArgs>;

const REQUEST_TIMEOUT_MS = 10_000;
const WARM_UP_REQUESTS = 20;

async function respond(nc: NatsConnection, args: PeerArgs): Promise<void> {
  // Never changed after this, so one buffer can go out in every reply.
  const reply = Buffer.alloc(args.replyBytes, 1);
  nc.subscribe(args.subject, { callback: (err, msg) => (err ? undefined : msg.respond(reply)) });
  await nc.flush();
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
}

async function request(nc: NatsConnection, args: PeerArgs): Promise<void> {
  const payload = Buffer.alloc(args.requestBytes, 2);
  for (let i = 0; i < WARM_UP_REQUESTS; i++) await nc.request(args.subject, payload, { timeout: REQUEST_TIMEOUT_MS });
  let requests = 0;
  const started = performance.now();
  const deadline = started + args.seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      await nc.request(args.subject, payload, { timeout: REQUEST_TIMEOUT_MS });
      requests++;
    }
  };
  await Promise.all(Array.from({ length: args.inFlight }, worker));
  process.stdout.write(`${JSON.stringify({ requests, seconds: (performance.now() - started) / 1000 })}\n`);
}

const args = PeerArgs.parse(JSON.parse(process.argv[2] ?? "{}"));
const nc = await connect({
  servers: args.url,
  tls: tlsConnectOptions(args.pki, args.identity),
  inboxPrefix: inboxPrefix(args.identity),
  name: `bench bus ${args.role}`,
  reconnect: false,
});
try {
  await (args.role === "respond" ? respond(nc, args) : request(nc, args));
} finally {
  await nc.close();
}

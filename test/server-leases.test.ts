/**
 * Handles of a client that is gone are reclaimed (issue: a server reported 38 open handles while every
 * client reported 0). A raw client opens files and directories and vanishes without releasing them;
 * another keeps renewing. With a short lease the first one's handles are closed and counted, the
 * second one's stay usable.
 */
import assert from "node:assert/strict";
import { constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { ERRNO, decodeReply, encodeRequest, inboxPrefix, requestSubject, type OpArgs, type OpName, type OpResult, type Reply, type ServerHandle } from "../src/protocol/index.js";
import { NULL_SERVER_OBSERVER, openPolicy, parseExportSpecs, startServer, type RunningServer } from "../src/server/index.js";
import { startNatsServer, type NatsServer } from "./helpers/nats.js";

const LEASE_MS = 1_500;

let nats: NatsServer;
let nc: NatsConnection;
let requester: NatsConnection;
let server: RunningServer;
let base: string;
let reclaimed = 0;
let sequence = 0;

async function call<O extends OpName>(client: string, op: O, args: OpArgs<O>, instance?: string): Promise<Reply<OpResult<O>>> {
  const subject = requestSubject("home", "alice", op, instance);
  const id = `${client}:${++sequence}`;
  const message = await requester.request(subject, encodeRequest({ id, deadline: Date.now() + 10_000, args }, subject), { timeout: 5000 });
  return decodeReply<OpResult<O>>(message.data, message.subject, id);
}

async function openAll(client: string, count: number): Promise<ServerHandle[]> {
  const handles: ServerHandle[] = [];
  for (let i = 0; i < count; i++) {
    const reply = i % 2 === 0 ? await call(client, "open", { path: "/file", flags: constants.O_RDONLY }) : await call(client, "opendir", { path: "/dir" });
    assert.equal(reply.errno, 0, reply.message);
    handles.push(reply.result!);
  }
  return handles;
}

before(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  requester = await connect({ servers: nats.url, inboxPrefix: inboxPrefix("alice") });
  base = mkdtempSync(join(tmpdir(), "natsfs-leases-"));
  writeFileSync(join(base, "file"), "data");
  mkdirSync(join(base, "dir"));
  const exports = parseExportSpecs([`home=${base}`]);
  const observer = { ...NULL_SERVER_OBSERVER, handlesReclaimed: (_export: string, count: number) => void (reclaimed += count) };
  server = await startServer({ nc, exports, policy: openPolicy(exports), observer, options: { leaseMs: LEASE_MS }, logger: pino({ level: "silent" }) });
});

after(async () => {
  await requester?.close();
  await server?.stop();
  await nc?.close();
  await nats?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("client leases", () => {
  it("reclaims the handles of a client that stopped talking, keeps those of one that renews", async () => {
    const gone = await openAll("ghost", 20);
    const kept = await openAll("alive", 4);
    assert.equal(server.status().exports[0]!.openHandles, 24);
    assert.ok(gone.every((h) => h.leaseMs === LEASE_MS), "every handle says how long its lease is");
    const renewUntil = Date.now() + LEASE_MS * 3;
    while (Date.now() < renewUntil) {
      const renewal = await call("alive", "renew", { handle: kept[0]!.handle }, kept[0]!.instance);
      assert.equal(renewal.errno, 0, renewal.message);
      await sleep(LEASE_MS / 3);
    }
    assert.equal(server.status().exports[0]!.openHandles, 4, "the silent client's 20 handles are closed");
    assert.equal(reclaimed, 20);
    for (const [index, handle] of kept.entries()) {
      const reply =
        index % 2 === 0
          ? await call("alive", "fgetattr", { handle: handle.handle }, handle.instance)
          : await call("alive", "readdir", { handle: handle.handle, offset: 0 }, handle.instance);
      assert.equal(reply.errno, 0, `a renewed handle still works: ${reply.message}`);
    }
    const stale = await call("ghost", "fgetattr", { handle: gone[0]!.handle }, gone[0]!.instance);
    assert.equal(stale.errno, ERRNO.ESTALE, "a reclaimed handle is stale: its client re-opens, as after a restart");
  });
});

/**
 * Fencing (issue: a frozen instance that thaws must never apply a request its client has given up on).
 *
 * Two instances serve one export. A process opens a file through the mount and fsyncs 512 KiB of "Z";
 * the instance holding its handle is frozen (SIGSTOP); the process writes 8 × 64 KiB of "A" and
 * fsyncs (the client moves the handle to the other instance), then writes the same range with "B" and
 * fsyncs; the frozen instance thaws. Before fencing, the thawed instance executed the "A" writes still
 * in its socket buffer after the newer "B" data. Now every request carries its deadline and the
 * thawed instance drops them, and the file holds exactly the "B" data, byte for byte.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { fetchMetrics, sumCounter } from "./fixtures/posix-common.js";
import { Rig, startFaultMount, startFsServer, startNatsNode, startWorker, type FaultMount, type FsServer } from "./helpers/faults.js";

const KiB = 1024;
const FILE_BYTES = 512 * KiB;
const PIECE_BYTES = 64 * KiB;
const PIECES = 8;
/** How long the thawed instance gets to do whatever is still in its socket buffer. */
const THAWED_MS = 8_000;
const REPETITIONS = Number(process.env.NATSFS_FENCING_REPETITIONS ?? "2");

/** The process doing the I/O on `path`: runs a phase per line it is sent, prints a line when each is done. */
const worker = (path: string) => `
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
const [path, size, piece, pieces] = [${JSON.stringify(path)}, ${FILE_BYTES}, ${PIECE_BYTES}, ${PIECES}];
const fd = openSync(path, "w+");
const fill = (letter, count) => {
  const started = Date.now();
  for (let i = 0; i < count; i++) writeSync(fd, Buffer.alloc(piece, letter), 0, piece, i * piece);
  fsyncSync(fd);
  return Date.now() - started;
};
fill("Z", size / piece);
console.log("zeroed");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line === "A" || line === "B") console.log(line + "-done " + fill(line, pieces));
  if (line === "close") { closeSync(fd); console.log("closed"); process.exit(0); }
}
`;

describe("a frozen instance that thaws never applies a request its client gave up on", { timeout: 420_000 }, () => {
  let rig: Rig;
  let servers: FsServer[];
  let mount: FaultMount;

  before(async () => {
    rig = new Rig();
    const nats = await startNatsNode(rig);
    servers = [await startFsServer(rig, [nats.url]), await startFsServer(rig, [nats.url])];
    mount = await startFaultMount(rig, [nats.url], rig.newMountpoint());
  });

  after(async () => {
    await rig.teardown();
  });

  for (let repetition = 1; repetition <= REPETITIONS; repetition++) {
    it(`keeps the newer fsync'd data, byte for byte (run ${repetition})`, { timeout: 180_000 }, async (t) => {
      const name = `fenced-${repetition}`;
      const handlesBefore = await Promise.all(servers.map((s) => s.openHandles()));
      const writer = startWorker(rig, worker(join(mount.mountpoint, name)), `writer ${name}`);
      await writer.waitLine(/^zeroed$/, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${rig.logs()}`);
      });
      // The instance holding the writer's handle: the one whose count rose when it opened the file.
      const handlesAfter = await Promise.all(servers.map((s) => s.openHandles()));
      const holder = servers[handlesAfter.findIndex((count, i) => count > handlesBefore[i]!)];
      assert.ok(holder, `no instance took the writer's handle: ${handlesBefore} → ${handlesAfter}`);
      const expiredBefore = await expiredRequests(holder);
      let aDone = "";
      rig.freeze(holder.proc);
      try {
        writer.send("A");
        aDone = await writer.waitLine(/^A-done /, 150_000);
        writer.send("B");
        const bDone = await writer.waitLine(/^B-done /, 60_000);
        t.diagnostic(`A writes + fsync took ${aDone.split(" ")[1]} ms with the handle's instance frozen; B took ${bDone.split(" ")[1]} ms`);
      } finally {
        rig.thaw(holder.proc);
      }
      await sleep(THAWED_MS);
      writer.send("close");
      await writer.waitLine(/^closed$/, 30_000);

      const onDisk = readFileSync(join(rig.exportDir, name));
      assert.equal(onDisk.length, FILE_BYTES);
      const expected = Buffer.concat([Buffer.alloc(PIECES * PIECE_BYTES, "B"), Buffer.alloc(FILE_BYTES - PIECES * PIECE_BYTES, "Z")]);
      const firstWrong = onDisk.findIndex((byte, i) => byte !== expected[i]);
      assert.equal(firstWrong, -1, `byte ${firstWrong} is "${String.fromCharCode(onDisk[firstWrong] ?? 0)}": a stale write was applied after newer fsync'd data`);
      const dropped = (await expiredRequests(holder)) - expiredBefore;
      t.diagnostic(`the thawed instance dropped ${dropped} request(s) past their deadline`);
      assert.ok(Number(aDone.split(" ")[1]) > 5_000, "the writes waited for the frozen instance: the scenario happened");
    });
  }
});

/** natsfs_server_requests_expired_total of one instance, all labels summed. */
async function expiredRequests(server: FsServer): Promise<number> {
  return sumCounter(await fetchMetrics(server.metricsPort), "natsfs_server_requests_expired_total", {}) ?? 0;
}

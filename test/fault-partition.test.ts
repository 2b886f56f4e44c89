/**
 * A network partition between the client and the bus. Both mounts run in a network namespace of their
 * own (nsenter --net only, so their FUSE mounts stay visible here), joined to the host by a veth pair;
 * nats-server and the natsfs server stay on the host. The veth is cut for 30 s:
 * - the hard mount blocks (a read started during the cut neither fails nor finishes) and then resumes
 *   with nothing lost: a write stream that spans the cut arrives byte for byte;
 * - the soft mount (--soft-timeout 5) fails an op with EIO within its timeout + 2 s.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { sha256File } from "./fixtures/posix-common.js";
import { run } from "./helpers/mount.js";
import {
  MiB,
  Rig,
  createNetns,
  startFaultMount,
  startFsServer,
  startNatsNode,
  startWorker,
  writeRandomFile,
  type FaultMount,
  type Netns,
} from "./helpers/faults.js";

const OUTAGE_MS = Number(process.env.NATSFS_FAULT_PARTITION_S ?? "30") * 1000;
const SOFT_TIMEOUT_S = 5;
const CHUNK = 256 * 1024;
const CHUNKS = 160;

/** Writes CHUNKS random chunks with a pause between them, printing "W i" after each, then fsyncs and prints the sha256. */
function streamWriterScript(path: string): string {
  return `
import fs from "node:fs";
import { createHash, randomBytes } from "node:crypto";
const fd = fs.openSync(${JSON.stringify(path)}, "w");
const hash = createHash("sha256");
try {
  for (let i = 0; i < ${CHUNKS}; i++) {
    const chunk = randomBytes(${CHUNK});
    fs.writeSync(fd, chunk, 0, chunk.length, i * ${CHUNK});
    hash.update(chunk);
    console.log("W " + i);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  console.log("SHA " + hash.digest("hex"));
} catch (e) {
  console.log("ERROR " + e.code + " " + e.message);
}
`;
}

describe("network partition between the client and the bus", { timeout: 240_000 }, () => {
  let rig: Rig;
  let netns: Netns;
  let hard: FaultMount;
  let soft: FaultMount;

  before(async () => {
    rig = new Rig();
    netns = await createNetns(rig);
    const nats = await startNatsNode(rig, { host: netns.hostAddress });
    await startFsServer(rig, [nats.url]);
    const inNamespace = { wrapper: netns.wrapper, metricsHost: netns.nsAddress };
    hard = await startFaultMount(rig, [nats.url], rig.newMountpoint("hard"), inNamespace);
    soft = await startFaultMount(rig, [nats.url], rig.newMountpoint("soft"), { ...inNamespace, extraArgs: ["--soft-timeout", String(SOFT_TIMEOUT_S)] });
  });

  after(async () => {
    await rig.teardown();
  });

  it(`hard mount blocks through a ${OUTAGE_MS / 1000} s cut and loses nothing; soft mount fails with EIO in time`, async () => {
    const readTarget = join(rig.exportDir, "read-during-cut.bin");
    writeRandomFile(readTarget, 4 * MiB);
    writeRandomFile(join(rig.exportDir, "soft-target.bin"), 1 * MiB);
    const expectedRead = await sha256File(readTarget);

    const writer = startWorker(rig, streamWriterScript(join(hard.mountpoint, "stream.bin")), "stream writer");
    await writer.waitLine(/^W 20$/, 60_000);
    await netns.cut();
    const cutAt = Date.now();
    try {
      // Hard mount: a read of a file it has never seen, started during the cut.
      await sleep(1_000);
      let hardReadDone = false;
      const hardRead = run("sha256sum", [join(hard.mountpoint, "read-during-cut.bin")], { timeoutMs: OUTAGE_MS + 60_000 }).finally(() => (hardReadDone = true));

      // Soft mount: an op that must reach the server fails with EIO within the soft timeout + 2 s.
      const softStarted = Date.now();
      const softRead = await run("cat", [join(soft.mountpoint, "soft-target.bin")], { timeoutMs: 30_000 });
      const softSeconds = (Date.now() - softStarted) / 1000;
      assert.notEqual(softRead.code, 0, "the soft mount's read must fail during the cut");
      assert.match(softRead.stderr, /Input\/output error/, `soft mount error: ${softRead.stderr}`);
      assert.ok(softSeconds <= SOFT_TIMEOUT_S + 2, `the soft mount answered EIO after ${softSeconds.toFixed(1)} s (timeout ${SOFT_TIMEOUT_S} s)`);

      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
      if (hardReadDone) assert.fail(`the hard mount's read must block through the cut, it ended: ${JSON.stringify(await hardRead)}`);
      await netns.restore();

      const hardResult = await hardRead;
      assert.equal(hardResult.code, 0, `the hard mount's read failed after the cut: ${hardResult.stderr}\n${rig.logs()}`);
      assert.equal(hardResult.stdout.split(" ")[0], expectedRead, "data read through the cut");
    } finally {
      await netns.restore();
    }

    const line = await writer.waitLine(/^(SHA|ERROR) /, 120_000);
    assert.match(line, /^SHA /, `the write stream failed across the cut\n${rig.logs()}`);
    const written = line.slice(4);
    assert.equal(await sha256File(join(rig.exportDir, "stream.bin")), written, "stream on the server's disk");
    assert.equal(await sha256File(join(hard.mountpoint, "stream.bin")), written, "stream read back through the mount");

    // The soft mount works again once the bus is back.
    const softAgain = await run("sha256sum", [join(soft.mountpoint, "soft-target.bin")], { timeoutMs: 30_000 });
    assert.equal(softAgain.code, 0, `soft mount after the cut: ${softAgain.stderr}`);
    assert.equal(softAgain.stdout.split(" ")[0], await sha256File(join(rig.exportDir, "soft-target.bin")));
  });
});

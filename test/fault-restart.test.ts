/**
 * A natsfs server is `kill -9`ed and restarted on the same export directory while the mount is busy:
 * copies in and out finish byte for byte, 100 open handles keep reading and writing, a file unlinked
 * while open stays readable, and the client counts its handle remaps.
 * NATSFS_FAULT_MB sets the size of each big copy (default 500).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { sha256File } from "./fixtures/posix-common.js";
import { run } from "./helpers/mount.js";
import {
  MiB,
  type Rig,
  startSimpleRig,
  copyAcrossFault,
  assertCopiesIntact,
  reportRecovery,
  startWorker,
  waitUntil,
  writeRandomFile,
  type FaultMount,
  type FsServer,
} from "./helpers/faults.js";

const BIG_MB = Number(process.env.NATSFS_FAULT_MB ?? "500");
const OUTAGE_MS = 3_000;

describe("server kill -9 and restart on the same export", { timeout: 300_000 }, () => {
  let rig: Rig;
  let server: FsServer;
  let mount: FaultMount;

  before(async () => {
    ({ rig, server, mount } = await startSimpleRig());
  });

  after(async () => {
    await rig?.teardown();
  });

  /** kill -9, a pause, a fresh server process on the same export directory. */
  async function restartServer(pauseMs = OUTAGE_MS): Promise<void> {
    await server.kill();
    await sleep(pauseMs);
    await server.restart();
  }

  it(`copies ${BIG_MB} MB in and ${BIG_MB} MB out across a kill -9 of the server`, async (t) => {
    const remapsBefore = await mount.remaps();
    const check = await copyAcrossFault(rig, mount.mountpoint, BIG_MB * MiB, "big", () => restartServer());
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    const remaps = (await mount.remaps()) - remapsBefore;
    assert.ok(remaps >= 2, `expected the reading and the writing handle to be remapped, the client counted ${remaps}`);
  });

  it("keeps 50 reading and 50 writing handles working across a restart", async () => {
    const files = 50;
    const fileSize = 1 * MiB;
    const sources = join(rig.scratch, "handles");
    await run("mkdir", ["-p", sources]);
    for (let i = 0; i < files; i++) {
      writeRandomFile(join(rig.exportDir, `r${i}`), fileSize);
      writeRandomFile(join(sources, `w${i}`), fileSize);
    }
    const remapsBefore = await mount.remaps();
    const worker = startWorker(rig, holderScript({ mnt: mount.mountpoint, exportDir: rig.exportDir, sources, files, fileSize }), "handle holder");
    await worker.waitLine(/^HELD$/, 60_000);
    await restartServer();
    worker.send("GO");
    const report = JSON.parse((await worker.waitLine(/^RESULT /, 120_000)).slice("RESULT ".length)) as { errors: string[] };
    assert.deepEqual(report.errors, [], `handles failed after the restart\n${rig.logs()}`);
    assert.equal(await worker.exited(10_000), 0);
    for (let i = 0; i < files; i++) {
      assert.equal(await sha256File(join(rig.exportDir, `w${i}`)), await sha256File(join(sources, `w${i}`)), `w${i} on the server's disk`);
    }
    const remaps = (await mount.remaps()) - remapsBefore;
    assert.ok(remaps >= 2 * files, `expected every one of the ${2 * files} handles to be remapped, the client counted ${remaps}`);
  });

  it("keeps a file unlinked while open readable to its end across a restart", async () => {
    const size = 8 * MiB;
    const path = join(rig.exportDir, "doomed.bin");
    writeRandomFile(path, size);
    const expected = await sha256File(path);
    const worker = startWorker(rig, unlinkedReaderScript(join(mount.mountpoint, "doomed.bin")), "unlinked reader");
    await worker.waitLine(/^UNLINKED$/, 30_000);
    const hidden = () => readdirSync(rig.exportDir).filter((name) => name.startsWith(".fuse_hidden"));
    assert.equal(existsSync(path), false, "the name is gone");
    assert.equal(hidden().length, 1, `libfuse keeps the open file under a hidden name: ${readdirSync(rig.exportDir).join(", ")}`);
    await restartServer();
    worker.send("GO");
    const line = await worker.waitLine(/^(SHA|ERROR) /, 60_000);
    assert.equal(line, `SHA ${expected}`, `reading the unlinked file after the restart\n${rig.logs()}`);
    assert.equal(await worker.exited(10_000), 0);
    await waitUntil("the hidden file to go after the last close", () => hidden().length === 0, 10_000);
  });
});

/**
 * Opens 50 files for reading and 50 for writing, does the first part of the I/O, waits for GO (the
 * server restarts meanwhile), does the rest through the same descriptors, and reports every mismatch.
 */
function holderScript(config: { mnt: string; exportDir: string; sources: string; files: number; fileSize: number }): string {
  return `
import fs from "node:fs";
import readline from "node:readline";
const c = ${JSON.stringify(config)};
const errors = [];
const readers = [], writers = [];
for (let i = 0; i < c.files; i++) readers.push(fs.openSync(c.mnt + "/r" + i, "r"));
for (let i = 0; i < c.files; i++) writers.push(fs.openSync(c.mnt + "/w" + i, "w"));
const firstRead = 64 * 1024, firstWrite = c.fileSize / 2;
const got = readers.map(() => Buffer.alloc(c.fileSize));
const src = writers.map((_, i) => fs.readFileSync(c.sources + "/w" + i));
function readRange(i, from, to) {
  for (let at = from; at < to; ) {
    const n = fs.readSync(readers[i], got[i], at, to - at, at);
    if (n === 0) { errors.push("r" + i + ": early EOF at " + at); return; }
    at += n;
  }
}
for (let i = 0; i < c.files; i++) readRange(i, 0, firstRead);
for (let i = 0; i < c.files; i++) fs.writeSync(writers[i], src[i], 0, firstWrite, 0);
console.log("HELD");
const rl = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once("line", resolve));
rl.close();
for (let i = 0; i < c.files; i++) {
  try { readRange(i, firstRead, c.fileSize); } catch (e) { errors.push("r" + i + ": " + e.code + " " + e.message); }
}
for (let i = 0; i < c.files; i++) {
  try {
    fs.writeSync(writers[i], src[i], firstWrite, c.fileSize - firstWrite, firstWrite);
    fs.fsyncSync(writers[i]);
  } catch (e) { errors.push("w" + i + ": " + e.code + " " + e.message); }
}
for (const fd of [...readers, ...writers]) {
  try { fs.closeSync(fd); } catch (e) { errors.push("close: " + e.code + " " + e.message); }
}
for (let i = 0; i < c.files; i++) {
  if (!got[i].equals(fs.readFileSync(c.exportDir + "/r" + i))) errors.push("r" + i + ": data read differs from the server's file");
}
console.log("RESULT " + JSON.stringify({ errors }));
`;
}

/** Opens a file, reads 1 MiB, unlinks it, waits for GO, reads on to the end and prints the sha256. */
function unlinkedReaderScript(path: string): string {
  return `
import fs from "node:fs";
import { createHash } from "node:crypto";
import readline from "node:readline";
const fd = fs.openSync(${JSON.stringify(path)}, "r");
const hash = createHash("sha256");
const buffer = Buffer.alloc(1024 * 1024);
let at = 0;
const readSome = () => { const n = fs.readSync(fd, buffer, 0, buffer.length, at); if (n > 0) { hash.update(buffer.subarray(0, n)); at += n; } return n; };
readSome();
fs.unlinkSync(${JSON.stringify(path)});
console.log("UNLINKED");
const rl = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once("line", resolve));
rl.close();
try {
  while (readSome() > 0);
  fs.closeSync(fd);
  console.log("SHA " + hash.digest("hex"));
} catch (e) {
  console.log("ERROR " + e.code + " " + e.message + " after " + at + " bytes");
}
`;
}

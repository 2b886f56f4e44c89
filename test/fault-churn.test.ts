/**
 * 20 `kill -9`s and restarts of the natsfs server at random moments while a mixed workload (mkdir,
 * create, append, rename, unlink, rmdir) runs through the mount. The test generates the workload from
 * a seeded random generator, hands the worker one op at a time, and applies each acknowledged op to an
 * in-memory model: the final tree on the mount and on the server's disk must equal the model exactly.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { walkTree } from "./fixtures/posix-common.js";
import { startSimpleRig, startWorker, type FaultMount, type FsServer, type Rig, type Worker } from "./helpers/faults.js";

const RESTARTS = 20;
const SEED = Number(process.env.NATSFS_FAULT_SEED ?? "20240611");

/** mulberry32: small, seedable, good enough to pick ops. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Op =
  | { op: "mkdir"; path: string }
  | { op: "rmdir"; path: string }
  | { op: "create"; path: string; data: string }
  | { op: "append"; path: string; data: string }
  | { op: "rename"; from: string; to: string }
  | { op: "unlink"; path: string };

/** Expected tree: path → "dir" or file contents. */
type Model = Map<string, "dir" | Buffer>;

function applyOp(model: Model, op: Op): void {
  switch (op.op) {
    case "mkdir":
      model.set(op.path, "dir");
      break;
    case "rmdir":
    case "unlink":
      model.delete(op.path);
      break;
    case "create":
      model.set(op.path, Buffer.from(op.data, "base64"));
      break;
    case "append":
      model.set(op.path, Buffer.concat([model.get(op.path) as Buffer, Buffer.from(op.data, "base64")]));
      break;
    case "rename": {
      for (const [path, entry] of [...model]) {
        if (path === op.from || path.startsWith(`${op.from}/`)) {
          model.delete(path);
          model.set(op.to + path.slice(op.from.length), entry);
        }
      }
      break;
    }
  }
}

/** Picks the next op from the model's current state; every op it returns is valid there. */
function nextOp(model: Model, rand: () => number, counter: { n: number }): Op {
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)]!;
  const dirs = ["", ...[...model].filter(([, e]) => e === "dir").map(([p]) => p)];
  const files = [...model].filter(([, e]) => e !== "dir").map(([p]) => p);
  const emptyDirs = dirs.filter((d) => d !== "" && ![...model.keys()].some((p) => p.startsWith(`${d}/`)));
  const fresh = (prefix: string) => `${pick(dirs)}/${prefix}${counter.n++}`;
  const data = () => {
    // Mostly small, sometimes several kernel writes long (> 128 KiB).
    const size = rand() < 0.1 ? 128 * 1024 + Math.floor(rand() * 200 * 1024) : Math.floor(rand() * 16 * 1024);
    const bytes = Buffer.alloc(size + 4);
    for (let i = 0; i < size; i += 4) bytes.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
    return bytes.subarray(0, size).toString("base64");
  };
  const roll = rand();
  if (roll < 0.12 && dirs.length < 40) return { op: "mkdir", path: fresh("d") };
  if (roll < 0.4 || files.length < 5) return { op: "create", path: fresh("f"), data: data() };
  if (roll < 0.6) return { op: "append", path: pick(files), data: data() };
  if (roll < 0.78) return { op: "rename", from: pick(files), to: fresh("f") };
  if (roll < 0.82 && dirs.length > 1) {
    const dir = pick(dirs.filter((d) => d !== ""));
    return { op: "rename", from: dir, to: `${dir.slice(0, dir.lastIndexOf("/"))}/d${counter.n++}` };
  }
  if (roll < 0.86 && emptyDirs.length > 0) return { op: "rmdir", path: pick(emptyDirs) };
  return { op: "unlink", path: pick(files) };
}

/** What a tree on disk looks like in the model's terms: path → "dir" or sha256 of the contents. */
async function describeTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await walkTree(root)) {
    const path = `/${entry.path}`;
    if (entry.kind === "dir") out.set(path, "dir");
    else if (entry.kind === "file") out.set(path, createHash("sha256").update(await readFile(join(root, entry.path))).digest("hex"));
    else out.set(path, entry.kind);
  }
  return out;
}

function describeModel(model: Model): Map<string, string> {
  const out = new Map<string, string>();
  for (const [path, entry] of [...model].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out.set(path, entry === "dir" ? "dir" : createHash("sha256").update(entry).digest("hex"));
  }
  return out;
}

/** Differences between two trees, for a readable failure. */
function treeDiff(actual: Map<string, string>, expected: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [path, value] of expected) if (actual.get(path) !== value) lines.push(`${path}: expected ${value}, found ${actual.get(path) ?? "nothing"}`);
  for (const [path, value] of actual) if (!expected.has(path)) lines.push(`${path}: unexpected ${value}`);
  return lines;
}

/** Executes one JSON op per stdin line on the mount, answering "OK" or "ERR <code> <message>". */
function opRunnerScript(mnt: string): string {
  return `
import fs from "node:fs";
import readline from "node:readline";
const mnt = ${JSON.stringify(mnt)};
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line === "END") break;
  const o = JSON.parse(line);
  try {
    switch (o.op) {
      case "mkdir": fs.mkdirSync(mnt + o.path); break;
      case "rmdir": fs.rmdirSync(mnt + o.path); break;
      case "create": fs.writeFileSync(mnt + o.path, Buffer.from(o.data, "base64"), { flag: "wx" }); break;
      case "append": fs.appendFileSync(mnt + o.path, Buffer.from(o.data, "base64")); break;
      case "rename": fs.renameSync(mnt + o.from, mnt + o.to); break;
      case "unlink": fs.unlinkSync(mnt + o.path); break;
    }
    console.log("OK");
  } catch (e) {
    console.log("ERR " + e.code + " " + e.message);
  }
}
process.exit(0);
`;
}

describe("20 server kill/restarts during a mixed workload", { timeout: 300_000 }, () => {
  let rig: Rig;
  let server: FsServer;
  let mount: FaultMount;

  before(async () => {
    ({ rig, server, mount } = await startSimpleRig());
  });

  after(async () => {
    await rig?.teardown();
  });

  it(`ends with exactly the expected tree (seed ${SEED})`, async () => {
    const rand = random(SEED);
    const churnRand = random(SEED + 1);
    const model: Model = new Map();
    const counter = { n: 0 };
    const worker: Worker = startWorker(rig, opRunnerScript(mount.mountpoint), "op runner");
    let churnDone = false;
    let restarts = 0;

    const churn = (async () => {
      try {
        for (; restarts < RESTARTS; restarts++) {
          await sleep(300 + churnRand() * 1200);
          await server.kill();
          await server.restart();
        }
      } finally {
        churnDone = true;
      }
    })();

    const failures: string[] = [];
    let ops = 0;
    // Keep the workload going through every restart, then a little past the last one.
    for (let after = 0; !churnDone || after < 30; ops++) {
      if (churnDone) after++;
      const op = nextOp(model, rand, counter);
      worker.send(JSON.stringify(op));
      const answer = await worker.waitLine(/^(OK|ERR)/, 60_000);
      if (answer !== "OK") {
        failures.push(`op ${ops} ${JSON.stringify({ ...op, data: undefined })} (after ${restarts} restarts): ${answer}`);
        break;
      }
      applyOp(model, op);
    }
    await churn;
    worker.send("END");
    assert.equal(await worker.exited(10_000), 0);
    assert.deepEqual(failures, [], `an op failed through the restarts\n${rig.logs()}`);
    assert.equal(restarts, RESTARTS);

    const expected = describeModel(model);
    const onDisk = await describeTree(rig.exportDir);
    assert.deepEqual(treeDiff(onDisk, expected), [], `server's disk after ${ops} ops and ${RESTARTS} restarts`);
    const onMount = await describeTree(mount.mountpoint);
    assert.deepEqual(treeDiff(onMount, expected), [], `mount after ${ops} ops and ${RESTARTS} restarts`);
    const remaps = await mount.remaps();
    process.stderr.write(`fault-churn: ${ops} ops, ${RESTARTS} restarts, ${model.size} entries, ${remaps} remaps\n`);
  });
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setAttribute } from "fs-xattr";
import type { NatsConnection } from "nats";
import { ERRNO, NAME_MAX, PATH_MAX, requestSubject, type OpName, type ServerHandle, type Stat } from "../src/protocol/index.js";
import { start, type Started } from "./helpers/processes.js";
import { rawRequest, snapshotTree, startTlsStack, type TlsStack } from "./helpers/tls-stack.js";

/**
 * A client with a valid rw identity (alice) that speaks the protocol itself and tries to leave the
 * export: path tricks, symlinks inside the export that point outside it, and a directory swapped
 * with such a symlink while requests go through it. A canary directory next to the export must
 * never change and its secret must never come back in a reply.
 */

const RACE = {
  /** Requests the attacker sends through the swapping directory, at least. */
  requests: 10_000,
  concurrency: 32,
  /** The swapper gives up on its own after this long, whatever happens to the test. */
  swapperMaxSeconds: 120,
} as const;

const CANARY_SECRET = `CANARY-${randomBytes(16).toString("hex")}`;
const DECOY = "decoy: the file inside the export\n";

function errnoLabel(errno: number): string {
  return errno === 0 ? "ok" : (Object.entries(ERRNO).find(([, value]) => value === errno)?.[0] ?? String(errno));
}

/** Arguments of a path op with `path` as its (first or only) path. */
function pathArgs(op: OpName, path: string): Record<string, unknown> {
  switch (op) {
    case "access": return { path, mode: 0 };
    case "getxattr": case "removexattr": return { path, name: "user.x" };
    case "setxattr": return { path, name: "user.x", value: new Uint8Array([1]), flags: 0 };
    case "open": return { path, flags: constants.O_RDONLY };
    case "openw": return { path, flags: constants.O_RDWR };
    case "create": return { path, flags: constants.O_RDWR | constants.O_CREAT, mode: 0o644 };
    case "truncate": return { path, size: 0 };
    case "mkdir": return { path, mode: 0o755 };
    case "symlink": return { target: "anything", path };
    case "mknod": return { path, mode: constants.S_IFIFO | 0o644, rdev: 0 };
    case "chmod": return { path, mode: 0o777 };
    case "chown": return { path, uid: 1234, gid: 1234 };
    case "utimens": return { path, atime: { sec: 0, nsec: 0 }, mtime: "now" };
    default: return { path };
  }
}

const SINGLE_PATH_OPS: OpName[] = [
  "getattr", "access", "statfs", "readlink", "getxattr", "listxattr", "opendir", "open", "openw", "create", "truncate",
  "unlink", "mkdir", "rmdir", "symlink", "mknod", "chmod", "chown", "utimens", "setxattr", "removexattr",
];

/** Every request that puts `path` somewhere a path goes: each single-path op, and both ends of rename and link. */
function requestsWithPath(path: string, validOther: string): { op: OpName; args: Record<string, unknown> }[] {
  return [
    ...SINGLE_PATH_OPS.map((op) => ({ op, args: pathArgs(op, path) })),
    ...(["rename", "link"] as const).flatMap((op) => [
      { op, args: { from: path, to: validOther } },
      { op, args: { from: validOther, to: path } },
    ]),
  ];
}

function tally(outcomes: Iterable<string>): Record<string, number> {
  const mix: Record<string, number> = {};
  for (const o of outcomes) mix[o] = (mix[o] ?? 0) + 1;
  return mix;
}

/**
 * Swaps `swap` (a directory) and `aside` (a symlink to the canary) in a loop: atomically with
 * renameat2(RENAME_EXCHANGE) when python3 is there, else (or with NATSFS_TEST_NODE_SWAPPER=1) with
 * two renames each way.
 */
function startSwapper(swap: string, aside: string): Started {
  const exchange = `
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, deadline, n = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]), time.time() + float(sys.argv[3]), 0
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while time.time() < deadline:
        if libc.renameat2(-100, a, -100, b, 2) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
        n += 1
finally:
    print("swaps", n, flush=True)
`;
  if (process.env.NATSFS_TEST_NODE_SWAPPER === undefined && spawnSync("python3", ["-c", "import ctypes"], { timeout: 10_000 }).status === 0) {
    return start("python3", ["-c", exchange, swap, aside, String(RACE.swapperMaxSeconds)]);
  }
  const twoStep = `
const { renameSync } = require("node:fs");
const [swap, aside, seconds] = process.argv.slice(1);
const parked = swap + ".parked", deadline = Date.now() + Number(seconds) * 1000;
let n = 0;
process.on("SIGTERM", () => { console.log("swaps", n); process.exit(0); });
// In batches, so that SIGTERM gets handled between them.
const batch = () => {
  for (let i = 0; i < 1000; i++) { renameSync(swap, parked); renameSync(aside, swap); renameSync(swap, aside); renameSync(parked, swap); n += 2; }
  if (Date.now() < deadline) setImmediate(batch); else console.log("swaps", n);
};
batch();
`;
  return start(process.execPath, ["-e", twoStep, swap, aside, String(RACE.swapperMaxSeconds)]);
}

describe("a hostile client with a valid rw identity", () => {
  let stack: TlsStack;
  let alice: NatsConnection;
  let home: string;
  let canary: string;
  let canaryIno: number;
  let canarySnapshot: Awaited<ReturnType<typeof snapshotTree>>;
  const outside = () => readdirSync(dirname(home)).sort();
  let outsideBefore: string[];

  const send = async (op: OpName, args: Record<string, unknown>, instance?: string) => {
    const result = await rawRequest(alice, requestSubject("home", "alice", op, instance), args);
    if ("code" in result) return { label: result.code, reply: undefined };
    return { label: errnoLabel(result.reply.errno), reply: result.reply };
  };

  before(async () => {
    stack = await startTlsStack();
    home = stack.exportDirs.home;
    // The canary lives next to the exports, reachable by ../ from the export root.
    canary = join(dirname(home), "canary");
    mkdirSync(join(canary, "sub"), { recursive: true });
    writeFileSync(join(canary, "secret.txt"), CANARY_SECRET);
    // Attributes too, so that a leaking getxattr or listxattr would show.
    await setAttribute(join(canary, "secret.txt"), "user.x", Buffer.from(CANARY_SECRET));
    await setAttribute(canary, "user.x", Buffer.from(CANARY_SECRET));
    canaryIno = statSync(join(canary, "secret.txt")).ino;
    canarySnapshot = await snapshotTree(canary);
    symlinkSync(canary, join(home, "link"));
    symlinkSync(join(canary, "secret.txt"), join(home, "filelink"));
    writeFileSync(join(home, "plain.txt"), "plain\n");
    outsideBefore = outside();
    alice = await stack.connectAs("alice");
  });
  after(async () => {
    await stack?.teardown();
  });

  const assertCanaryUntouched = async () => {
    assert.deepEqual(await snapshotTree(canary), canarySnapshot, "the canary directory changed");
    assert.deepEqual(outside(), outsideBefore, "something appeared next to the export");
  };

  it("refuses paths that are not plain paths below the export root", async (t) => {
    const badPaths: Record<string, string> = {
      "..": "..",
      "/..": "/..",
      "/../x": "/../x",
      "/../canary/secret.txt": "/../canary/secret.txt",
      "a/../../x": "a/../../x",
      "/a/../../x": "/a/../../x",
      "relative": "canary/secret.txt",
      "empty": "",
      "//": "//",
      "double slash": "//canary",
      "trailing slash": "/plain.txt/",
      "dot": "/./plain.txt",
      "NUL in a component": "/plain.txt\0/../../canary",
      "NUL at the end": "/x\0",
      [`${NAME_MAX + 1}-byte name`]: `/${"n".repeat(NAME_MAX + 1)}`,
      [`${PATH_MAX + 1}-byte path`]: `${`/${"d".repeat(99)}`.repeat(40)}/${"e".repeat(PATH_MAX - 4000)}`,
    };
    assert.equal(Buffer.byteLength(badPaths[`${PATH_MAX + 1}-byte path`]!), PATH_MAX + 1);
    const outcomes: Record<string, string> = {};
    for (const [name, path] of Object.entries(badPaths)) {
      for (const { op, args } of requestsWithPath(path, "/plain.txt")) {
        const { label } = await send(op, args);
        outcomes[`${op} ${name} ${JSON.stringify(args).slice(0, 60)}`] = label;
      }
    }
    // Not strings at all, and the wrong kinds of string holder.
    for (const path of [42, null, ["/", ".."], { path: ".." }, new Uint8Array(Buffer.from("/../x"))]) {
      for (const op of ["getattr", "mkdir", "create"] as const) outcomes[`${op} ${JSON.stringify(path)}`] = (await send(op, { ...pathArgs(op, ""), path })).label;
    }
    t.diagnostic(`${Object.keys(outcomes).length} requests: ${JSON.stringify(tally(Object.values(outcomes)))}`);
    const accepted = Object.entries(outcomes).filter(([, label]) => label === "ok" || !(label in ERRNO));
    assert.deepEqual(accepted, [], "every request must get an error reply");
    await assertCanaryUntouched();
  });

  it("never follows a symlink inside the export that points outside it", async (t) => {
    const outcomes: Record<string, string> = {};
    for (const path of ["/link/secret.txt", "/link/sub", "/link/sub/x", "/link/new", "/link/secret.txt/x"]) {
      for (const { op, args } of requestsWithPath(path, "/plain.txt")) outcomes[`${op} ${JSON.stringify(args)}`] = (await send(op, args)).label;
    }
    // The symlinks themselves as the last component: ops that would act on what they point to.
    for (const op of ["open", "openw", "truncate", "chmod", "setxattr", "getxattr", "opendir", "create"] as const) {
      for (const path of ["/link", "/filelink"]) outcomes[`${op} ${path}`] = (await send(op, pathArgs(op, path))).label;
    }
    // listxattr of a symlink lists the link's own attributes (none), not its target's.
    for (const path of ["/link", "/filelink"]) {
      const { label, reply } = await send("listxattr", { path });
      assert.deepEqual([label, reply?.result], ["ok", []], `listxattr ${path}`);
    }
    t.diagnostic(`${Object.keys(outcomes).length} requests: ${JSON.stringify(tally(Object.values(outcomes)))}`);
    const accepted = Object.entries(outcomes).filter(([, label]) => label === "ok" || !(label in ERRNO));
    assert.deepEqual(accepted, [], "every request through or onto an outward symlink must be refused");
    const middle = Object.entries(outcomes).filter(([key]) => key.includes('"/link/'));
    assert.ok(middle.every(([, label]) => label === "ELOOP"), `a symlink in the middle of a path is ELOOP: ${JSON.stringify(middle.filter(([, l]) => l !== "ELOOP"))}`);
    await assertCanaryUntouched();
  });

  it(`never escapes through a directory swapped with an outward symlink under ≥ ${RACE.requests} requests`, async (t) => {
    const swap = join(home, "swap");
    const aside = join(home, "swap-aside");
    mkdirSync(swap);
    writeFileSync(join(swap, "secret.txt"), DECOY);
    symlinkSync(canary, aside);
    const swapper = startSwapper(swap, aside);
    const outcomes = new Map<string, Record<string, number>>();
    const count = (kind: string, label: string) => {
      const mix = outcomes.get(kind) ?? {};
      mix[label] = (mix[label] ?? 0) + 1;
      outcomes.set(kind, mix);
    };
    const leaks: string[] = [];
    let sent = 0;
    let next = 0;

    const release = async (handle: ServerHandle) => {
      sent += 1;
      count("release", (await send("release", { handle: handle.handle }, handle.instance)).label);
    };
    const attack = async (n: number) => {
      switch (n % 4) {
        case 0: {
          const { label, reply } = await send("create", { path: `/swap/pwned-${n}`, flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode: 0o644 });
          count("create", label);
          if (reply?.errno === 0) await release(reply.result as ServerHandle);
          break;
        }
        case 1: {
          const { label, reply } = await send("open", { path: "/swap/secret.txt", flags: constants.O_RDONLY });
          count("open", label);
          if (reply?.errno !== 0) break;
          const handle = reply.result as ServerHandle;
          sent += 1;
          const read = await send("read", { handle: handle.handle, offset: 0, length: 4096 }, handle.instance);
          count("read", read.label);
          const text = read.reply?.errno === 0 ? Buffer.from(read.reply.result as Uint8Array).toString() : "";
          if (text.includes("CANARY")) leaks.push(`read returned ${text}`);
          else if (read.reply?.errno === 0 && text !== DECOY) leaks.push(`read returned unexpected ${JSON.stringify(text)}`);
          await release(handle);
          break;
        }
        case 2:
          count("mkdir", (await send("mkdir", { path: `/swap/dir-${n}`, mode: 0o755 })).label);
          break;
        default: {
          const { label, reply } = await send("getattr", { path: "/swap/secret.txt" });
          count("getattr", label);
          if (reply?.errno === 0 && (reply.result as Stat).ino === canaryIno) leaks.push("getattr returned the canary's inode");
        }
      }
    };
    const worker = async () => {
      while (next < RACE.requests) {
        const n = next++;
        sent += 1;
        await attack(n);
      }
    };
    try {
      await Promise.all(Array.from({ length: RACE.concurrency }, worker));
    } finally {
      await swapper.stop();
    }
    const swaps = /swaps (\d+)/.exec(swapper.output())?.[1];
    t.diagnostic(`${sent} requests while the swapper made ${swaps ?? "?"} swaps: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(sent >= RACE.requests);
    assert.ok(Number(swaps) > 0, `the swapper did not run: ${swapper.output()}`);
    assert.deepEqual(leaks, []);
    await assertCanaryUntouched();
    // Whatever got created went into the real directory (wherever the swap left it).
    const swapDir = [swap, aside, `${swap}.parked`].find((path) => lstatSync(path, { throwIfNoEntry: false })?.isDirectory())!;
    const created = readdirSync(swapDir).filter((name) => name !== "secret.txt");
    const successes = (outcomes.get("create")?.ok ?? 0) + (outcomes.get("mkdir")?.ok ?? 0);
    assert.equal(created.length, successes, "every successful create and mkdir landed in the export's own directory");
  });
});

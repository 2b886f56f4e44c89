import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Encoder } from "@msgpack/msgpack";
import type { NatsConnection, NatsError } from "nats";
import {
  ERRNO,
  MAX_DATA_BYTES,
  OPS,
  OP_NAMES,
  encodeRequest,
  requestSubject,
  sealFrame,
  type OpName,
  type ServerHandle,
} from "../src/protocol/index.js";
import { run } from "./helpers/mount.js";
import { decodeAnyReply, rawRequest, startTlsStack, within, type TlsMount, type TlsStack } from "./helpers/tls-stack.js";

/**
 * Throws ≥ 100,000 random and mutated frames at a live server over mutual TLS while a legitimate
 * client keeps using its FUSE mount. The fuzzing identity (alice) may publish anything under natsfs
 * on this bus, so that unknown ops and other identities' tokens reach the server's own checks.
 */

const FUZZ = {
  frames: Number(process.env.NATSFS_FUZZ_FRAMES ?? 100_000),
  /** Requests in flight at once. */
  concurrency: 256,
  /** A reply slower than this counts as a silent timeout (a failure). */
  replyTimeoutMs: 30_000,
  /** Share of frames sent without asking for a reply. */
  fireAndForget: 0.05,
  /** Seed of the frame generator: failures are reproducible by setting NATSFS_FUZZ_SEED. */
  seed: Number(process.env.NATSFS_FUZZ_SEED ?? Date.now() % 2 ** 31),
  /** How often the legitimate client writes and reads back a file. */
  legitEveryMs: 1_000,
} as const;

/** Largest frame the fuzzer sends: under the default max_payload with room for headers. */
const MAX_FRAME_BYTES = 1_000_000;

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (length: number) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = int(256);
    return out;
  };
  return { next, int, pick, bytes };
}
type Rng = ReturnType<typeof prng>;

const encoder = new Encoder();
const concat = (...parts: Uint8Array[]) => Buffer.concat(parts);

/** Prebuilt giant values: building a fresh 600 KB string per frame would only fuzz the test itself. */
const GIANT = {
  string: "A".repeat(600_000),
  path: `/${"p/".repeat(150_000)}x`,
  bytes: new Uint8Array(900_000).fill(0x41),
} as const;

const NUMBERS = [2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, Number.MAX_VALUE, -1, -(2 ** 31), -(2 ** 63), 0.5, -0.0, NaN, Infinity, -Infinity, 0xffffffff, 0x100000000];

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 6 : 9)) {
    case 0: return rng.pick(NUMBERS);
    case 1: return rng.int(2 ** 31) - 2 ** 30;
    case 2: return Buffer.from(rng.bytes(rng.int(40))).toString("latin1");
    case 3: return rng.bytes(rng.int(64));
    case 4: return rng.pick([true, false, null]);
    case 5: return rng.pick(["/", "..", "/../x", "", "\0", "user.x", "/fuzz/a"]);
    case 6: return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
    case 7: return Object.fromEntries(Array.from({ length: rng.int(5) }, () => [rng.pick(["path", "handle", "id", "args", "x", "offset", "length", "data"]), randomValue(rng, depth + 1)]));
    default: return { id: randomValue(rng, depth + 1), args: randomValue(rng, depth + 1) };
  }
}

/** A plausible request for `op`, with paths inside the fuzz area. */
function template(rng: Rng, op: OpName, handles: readonly number[]): Record<string, unknown> {
  const path = rng.pick(["/", "/fuzz", "/fuzz/a", "/fuzz/b", "/fuzz/a/b", "/plans.txt", `/fuzz/${rng.int(50)}`]);
  const handle = handles.length > 0 && rng.next() < 0.7 ? rng.pick(handles) : rng.int(64) + 1;
  const full: Record<string, unknown> = {
    path,
    from: path,
    to: `/fuzz/${rng.int(50)}`,
    target: "../anywhere",
    handle,
    offset: rng.int(100_000),
    length: rng.int(70_000),
    data: rng.bytes(rng.int(2_000)),
    value: rng.bytes(rng.int(200)),
    name: rng.pick(["user.a", "user.b", "trusted.x", "security.capability"]),
    flags: rng.pick([0, 1, 2, 0o100, 0o1000, 0o2000, 0o101]),
    mode: rng.pick([0o644, 0o755, 0o10644, 0o20644, 0o140644, 0o4777]),
    rdev: 0,
    uid: rng.int(70_000),
    gid: rng.int(70_000),
    size: rng.int(1_000_000),
    datasync: rng.next() < 0.5,
    atime: rng.next() < 0.5 ? { sec: rng.int(2 ** 40), nsec: rng.int(1e9) } : "now",
    mtime: rng.next() < 0.5 ? { sec: rng.int(2 ** 40), nsec: rng.int(1e9) } : "omit",
  };
  const keys = FIELDS[op];
  return Object.fromEntries(keys.map((key) => [key, full[key]]));
}

const FIELDS: Record<OpName, string[]> = {
  getattr: ["path"], fgetattr: ["handle"], access: ["path", "mode"], statfs: ["path"], readlink: ["path"],
  getxattr: ["path", "name"], listxattr: ["path"], opendir: ["path"], readdir: ["handle", "offset"], releasedir: ["handle"],
  open: ["path", "flags"], read: ["handle", "offset", "length"], release: ["handle"], renew: ["handle"], openw: ["path", "flags"],
  create: ["path", "flags", "mode"], write: ["handle", "offset", "data"], fsync: ["handle", "datasync"], fsyncdir: ["handle", "datasync"], ftruncate: ["handle", "size"],
  fallocate: ["handle", "mode", "offset", "length"],
  truncate: ["path", "size"], unlink: ["path"], rename: ["from", "to"], mkdir: ["path", "mode"], rmdir: ["path"],
  symlink: ["target", "path"], link: ["from", "to"], mknod: ["path", "mode", "rdev"], chmod: ["path", "mode"],
  chown: ["path", "uid", "gid"], utimens: ["path", "atime", "mtime"], setxattr: ["path", "name", "value", "flags"],
  removexattr: ["path", "name"],
};

/** One field of a valid request replaced by something hostile. */
function mutate(rng: Rng, args: Record<string, unknown>): Record<string, unknown> {
  const key = rng.next() < 0.85 && Object.keys(args).length > 0 ? rng.pick(Object.keys(args)) : rng.pick(["extra", "__proto__", "constructor"]);
  const hostile = [
    () => rng.pick(NUMBERS),
    () => randomValue(rng),
    () => GIANT.string.slice(0, rng.int(GIANT.string.length)),
    () => GIANT.path,
    () => GIANT.bytes.subarray(0, rng.int(GIANT.bytes.length)),
    () => undefined,
  ];
  // Giant values are rare: they cost the test more than the server.
  const choice = rng.next() < 0.02 ? rng.pick(hostile.slice(2, 5)) : rng.pick([hostile[0]!, hostile[1]!, hostile[5]!]);
  return { ...args, [key]: choice() };
}

/** Nesting `depth` levels deep inside a request's args (hand-encoded: encoders stop at 100 levels). */
function deeplyNested(rng: Rng, depth: number): Uint8Array {
  const level = rng.next() < 0.5 ? Uint8Array.of(0x91) : concat(Uint8Array.of(0x81), encoder.encode("k"));
  const inner = new Uint8Array(depth * level.length + 1);
  for (let i = 0; i < depth; i++) inner.set(level, i * level.length);
  inner[inner.length - 1] = 0xc0;
  if (rng.next() < 0.3) return inner;
  return concat(Uint8Array.of(0x82), encoder.encode("id"), encoder.encode(`fuzz:${rng.int(1e9)}`), encoder.encode("args"), Uint8Array.of(0x81), encoder.encode("path"), inner);
}

/** Headers that claim far more than the frame holds. */
const LYING_HEADERS = [
  [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4 G elements
  [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
  [0xc6, 0xff, 0xff, 0xff, 0xff], // bin32 of 4 GB
  [0xdb, 0x7f, 0xff, 0xff, 0xff], // str32 of 2 GB
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32
  [0xd4, 0xff, 0x00], // fixext with a reserved type (timestamp)
  [0xc1], // never used
];

interface Frame {
  subject: string;
  data: Uint8Array;
  kind: string;
  /** NATS-level outcomes this frame may legitimately get instead of a reply. */
  noResponders?: boolean;
  /**
   * Sent on a subject the server answers nothing on by design: another identity's (its reply would go
   * into an inbox not the requester's) or not a request subject at all. Published without a reply.
   */
  unanswered?: boolean;
}

function frameGenerator(rng: Rng, instance: string, handles: () => readonly number[]) {
  // home is also the legitimate client's export: only ops that change no state, nor its handles, go there.
  const harmless = OP_NAMES.filter((op) => !OPS[op].mutating && op !== "release" && op !== "releasedir");
  const subjectFor = (op: OpName, exportName: string): Pick<Frame, "subject" | "noResponders" | "unanswered"> => {
    const r = rng.next();
    if (r < 0.7) return { subject: requestSubject(exportName, "alice", op) };
    if (r < 0.8) return { subject: requestSubject(exportName, "alice", op, instance) };
    if (r < 0.85) return { subject: requestSubject(exportName, "alice", op, `i${rng.int(1e6)}`), noResponders: true };
    if (r < 0.9) return { subject: `${requestSubject(exportName, "alice", op, instance)}.extra`, noResponders: true };
    if (r < 0.95) return { subject: requestSubject(exportName, rng.pick(["bob", "carol", "mallory", "fileserver"]), op), unanswered: true };
    return { subject: `natsfs.${exportName}.alice.${rng.pick(["nosuchop", "GETATTR", "__proto__", "constructor", "💥", "%$#", "x".repeat(200)])}`, unanswered: true };
  };
  const pickTarget = (): { op: OpName; exportName: string } => {
    const exportName = rng.next() < 0.5 ? "secret" : "home";
    return { exportName, op: exportName === "home" ? rng.pick(harmless) : rng.pick(OP_NAMES) };
  };
  /** A frame addressed to `op`, with a body sealed for the subject it is sent on. */
  const sealed = (op: OpName, exportName: string, body: Uint8Array, kind: string): Frame => {
    const target = subjectFor(op, exportName);
    return { ...target, data: sealFrame(body, target.subject), kind };
  };
  const validRequest = (op: OpName, subject: string): Uint8Array => encodeRequest({ id: `fuzz:${rng.int(1e9)}`, deadline: Date.now() + 60_000, args: template(rng, op, handles()) } as never, subject);

  // Frames with a broken seal exercise the integrity check; the rest carry a valid seal over a bad
  // body, so that they reach the decoder and the argument checks behind it.
  return (): Frame => {
    const r = rng.next();
    const { op, exportName } = pickTarget();
    if (r < 0.2) {
      const length = rng.next() < 0.95 ? rng.int(256) : rng.int(64 * 1024);
      return { ...subjectFor(op, exportName), data: rng.bytes(length), kind: "random bytes" };
    }
    if (r < 0.3) return sealed(op, exportName, encoder.encode(randomValue(rng)), "msgpack of a wrong shape");
    if (r < 0.35) return sealed(op, exportName, rng.bytes(rng.int(512)), "sealed random bytes");
    if (r < 0.7) {
      let args = template(rng, op, handles());
      for (let i = 0, n = 1 + rng.int(3); i < n; i++) args = mutate(rng, args);
      const id = rng.next() < 0.9 ? `fuzz:${rng.int(1e9)}` : randomValue(rng);
      return sealed(op, exportName, encoder.encode({ id, args }), "request with mutated fields");
    }
    if (r < 0.75) {
      const target = subjectFor(op, exportName);
      const frame = validRequest(op, target.subject);
      return { ...target, data: frame.subarray(0, rng.int(frame.length)), kind: "truncated request" };
    }
    if (r < 0.8) {
      const body = encoder.encode({ id: `fuzz:${rng.int(1e9)}`, args: template(rng, op, handles()) });
      return sealed(op, exportName, body.subarray(0, rng.int(body.length)), "sealed truncated request");
    }
    if (r < 0.88) {
      const target = subjectFor(op, exportName);
      const flipped = Uint8Array.from(validRequest(op, target.subject));
      for (let i = 0, n = 1 + rng.int(4); i < n; i++) flipped[rng.int(flipped.length)] ^= 1 << rng.int(8);
      return { ...target, data: flipped, kind: "request with flipped bits" };
    }
    if (r < 0.9) return sealed(op, exportName, deeplyNested(rng, rng.next() < 0.1 ? 200_000 : 1 + rng.int(5_000)), "deep nesting");
    if (r < 0.93) {
      const header = Uint8Array.from(rng.pick(LYING_HEADERS));
      const body = rng.next() < 0.5 ? header : concat(Uint8Array.of(0x82), encoder.encode("id"), encoder.encode("x"), encoder.encode("args"), header);
      return sealed(op, exportName, body, "lying length header");
    }
    if (r < 0.95) {
      // Sealed for one subject, sent on another: what a bus that mixes up messages would deliver.
      const target = subjectFor(op, exportName);
      return { ...target, data: validRequest(op, `${target.subject}.elsewhere`), kind: "request sealed for another subject" };
    }
    const target = subjectFor(op, exportName);
    return { ...target, data: validRequest(op, target.subject), kind: "valid request" };
  };
}

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(match, `no VmRSS for ${pid}`);
  return Number(match[1]);
}

function errnoLabel(errno: number): string {
  return errno === 0 ? "ok" : (Object.entries(ERRNO).find(([, value]) => value === errno)?.[0] ?? String(errno));
}

describe("fuzzing a live server over mutual TLS", () => {
  let stack: TlsStack;
  let legit: TlsMount;
  let fuzzer: NatsConnection;

  before(async () => {
    stack = await startTlsStack({ widen: { alice: ["natsfs.>"] } });
    writeFileSync(join(stack.exportDirs.secret, "plans.txt"), "plans\n");
    legit = await stack.mount("alice", "home");
    fuzzer = await stack.connectAs("alice");
  });
  after(async () => {
    await stack?.teardown();
  });

  it(`answers ≥ ${FUZZ.frames} hostile frames with error or valid replies, stays up and bounded, and a mount keeps working`, async (t) => {
    const pid = stack.server.pid;
    // Baseline after the server has warmed up on real traffic.
    for (let i = 0; i < 200; i++) await rawRequest(fuzzer, requestSubject("secret", "alice", "getattr"), { path: "/plans.txt" });
    const baselineKb = rssKb(pid);
    let peakKb = baselineKb;

    // The legitimate client: a file written and read back through the mount every second.
    let fuzzing = true;
    const legitResults: string[] = [];
    const legitLoop = (async () => {
      await mkdir(join(legit.mountpoint, "legit"));
      for (let n = 0; fuzzing; n++) {
        const started = Date.now();
        const data = randomBytes(32 * 1024);
        const file = join(legit.mountpoint, "legit", `f${n}.bin`);
        try {
          await within(30_000, "legit write", writeFile(file, data));
          const back = await within(30_000, "legit read", readFile(file));
          const onDisk = readFileSync(join(stack.exportDirs.home, "legit", `f${n}.bin`));
          legitResults.push(back.equals(data) && onDisk.equals(data) ? "ok" : "bytes differ");
        } catch (err) {
          legitResults.push(`failed: ${(err as Error).message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, FUZZ.legitEveryMs - (Date.now() - started))));
      }
    })();

    const rng = prng(FUZZ.seed);
    // Real handles on secret, so that mutated handle-bound requests reach live fds too.
    const handles: number[] = [];
    for (const path of ["/plans.txt", "/"]) {
      const op = path === "/" ? "opendir" : "openw";
      const result = await rawRequest<ServerHandle>(fuzzer, requestSubject("secret", "alice", op), op === "opendir" ? { path } : { path, flags: 2 });
      if ("reply" in result && result.reply.errno === 0) handles.push(result.reply.result!.handle);
    }
    await mkdir(join(stack.exportDirs.secret, "fuzz", "a"), { recursive: true });
    const nextFrame = frameGenerator(rng, stack.instance, () => handles);

    const outcomes: Record<string, Record<string, number>> = {};
    const failures: string[] = [];
    const count = (kind: string, label: string) => {
      outcomes[kind] ??= {};
      outcomes[kind][label] = (outcomes[kind][label] ?? 0) + 1;
    };
    let sent = 0;
    let bytesSent = 0;
    const started = performance.now();
    const sampler = setInterval(() => {
      try {
        peakKb = Math.max(peakKb, rssKb(pid));
      } catch {
        // the process is gone: asserted below
      }
    }, 250);

    const one = async (frame: Frame) => {
      // Several giant mutations can add up past max_payload: such frames are cut (one more truncation).
      if (frame.data.length > MAX_FRAME_BYTES) frame = { ...frame, data: frame.data.subarray(0, MAX_FRAME_BYTES), kind: "truncated giant frame" };
      bytesSent += frame.data.length;
      if (frame.unanswered || rng.next() < FUZZ.fireAndForget) {
        fuzzer.publish(frame.subject, frame.data);
        if (sent % 64 === 0) await fuzzer.flush();
        count(frame.kind, "sent without reply");
        return;
      }
      try {
        const msg = await fuzzer.request(frame.subject, frame.data, { timeout: FUZZ.replyTimeoutMs });
        let label: string;
        try {
          const reply = decodeAnyReply(msg.data, msg.subject);
          if (!Number.isInteger(reply.errno) || reply.errno < 0) throw new Error(`errno ${String(reply.errno)}`);
          if (reply.errno !== 0 && typeof reply.message !== "string") throw new Error("error reply without a message");
          label = errnoLabel(reply.errno);
        } catch (err) {
          label = "undecodable reply";
          if (failures.length < 20) failures.push(`${frame.kind} on ${frame.subject}: ${(err as Error).message}`);
        }
        count(frame.kind, label);
      } catch (err) {
        const code = (err as NatsError).code ?? (err as Error).message;
        count(frame.kind, `NATS ${code}`);
        if (!(code === "503" && frame.noResponders) && failures.length < 20) failures.push(`${frame.kind} on ${frame.subject}: NATS ${code}`);
      }
    };
    const worker = async () => {
      while (sent < FUZZ.frames) {
        sent += 1;
        await one(nextFrame());
      }
    };
    try {
      await Promise.all(Array.from({ length: FUZZ.concurrency }, worker));
    } finally {
      clearInterval(sampler);
      fuzzing = false;
      await legitLoop;
    }
    const seconds = (performance.now() - started) / 1000;
    // V8 gives memory back once allocation calms down, not at once: a leak never settles, garbage does.
    const boundKb = 2 * baselineKb + 100 * 1024;
    const fuzzEnded = Date.now();
    let afterKb = rssKb(pid);
    while (afterKb >= boundKb && Date.now() - fuzzEnded < 20_000) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      afterKb = rssKb(pid);
    }
    const settledIn = (Date.now() - fuzzEnded) / 1000;

    t.diagnostic(`seed ${FUZZ.seed}: ${sent} frames (${(bytesSent / 1e6).toFixed(1)} MB) in ${seconds.toFixed(1)} s = ${Math.round(sent / seconds)} frames/s at ${FUZZ.concurrency} in flight`);
    t.diagnostic(`server RSS: ${baselineKb} kB before, ${peakKb} kB peak, ${afterKb} kB after (${settledIn.toFixed(1)} s to settle)`);
    t.diagnostic(`legitimate client: ${legitResults.length} write+read rounds: ${JSON.stringify(legitResults.reduce<Record<string, number>>((m, r) => ({ ...m, [r]: (m[r] ?? 0) + 1 }), {}))}`);
    for (const [kind, mix] of Object.entries(outcomes)) t.diagnostic(`${kind}: ${JSON.stringify(mix)}`);
    // EIO from a failure the server did not expect is worth a look even when the reply was well formed.
    const unexpected = stack.server.output().split("\n").filter((line) => line.includes("op failed unexpectedly"));
    if (unexpected.length > 0) t.diagnostic(`server logged ${unexpected.length} unexpected failures, first: ${unexpected[0]!.slice(0, 600)}`);

    assert.ok(sent >= FUZZ.frames);
    assert.deepEqual(failures, [], `replies that were not error or valid replies, or never came:\n${stack.logs().slice(-3000)}`);
    assert.equal(stack.server.child.exitCode, null, "the server exited");
    assert.equal(stack.server.child.signalCode, null, "the server was killed");
    assert.equal(stack.server.pid, pid);
    assert.ok(afterKb < boundKb, `server RSS grew from ${baselineKb} kB to ${afterKb} kB and stayed there for 20 s`);
    assert.ok(legitResults.length >= 3, `the legitimate client ran ${legitResults.length} rounds`);
    assert.deepEqual(legitResults.filter((r) => r !== "ok"), [], "the legitimate client failed during the fuzz");
    // And the server still answers normally afterwards.
    const check = await rawRequest(fuzzer, requestSubject("secret", "alice", "getattr"), { path: "/" });
    assert.ok("reply" in check && check.reply.errno === 0, JSON.stringify(check));
  });

  it("refuses a request over max_payload at the client, and oversized reads and writes with error replies", async () => {
    const over = await rawRequest(fuzzer, requestSubject("secret", "alice", "getattr"), new Uint8Array(1024 * 1024 + 1));
    assert.deepEqual(over, { code: "MAX_PAYLOAD_EXCEEDED" });

    writeFileSync(join(stack.exportDirs.secret, "big.bin"), randomBytes(MAX_DATA_BYTES + 10));
    const opened = await rawRequest<ServerHandle>(fuzzer, requestSubject("secret", "alice", "openw"), { path: "/big.bin", flags: 2 });
    assert.ok("reply" in opened && opened.reply.errno === 0, JSON.stringify(opened));
    const handle = opened.reply.result!;
    const onHandle = (op: OpName, args: Record<string, unknown>) => rawRequest(fuzzer, requestSubject("secret", "alice", op, handle.instance), { handle: handle.handle, ...args });
    const tooLong = await onHandle("read", { offset: 0, length: MAX_DATA_BYTES + 1 });
    assert.ok("reply" in tooLong && tooLong.reply.errno === ERRNO.EINVAL, JSON.stringify(tooLong));
    const fullRead = await onHandle("read", { offset: 0, length: MAX_DATA_BYTES });
    assert.ok("reply" in fullRead && fullRead.reply.errno === 0 && (fullRead.reply.result as Uint8Array).length === MAX_DATA_BYTES);
    const tooMuch = await onHandle("write", { offset: 0, data: new Uint8Array(MAX_DATA_BYTES + 1) });
    assert.ok("reply" in tooMuch && tooMuch.reply.errno === ERRNO.EINVAL, JSON.stringify(tooMuch));
    const negative = await onHandle("read", { offset: -1, length: 10 });
    assert.ok("reply" in negative && negative.reply.errno === ERRNO.EINVAL, JSON.stringify(negative));
    await onHandle("release", {});
  });
});

describe("a bus with a small max_payload", () => {
  const MAX_PAYLOAD = 64 * 1024;
  let stack: TlsStack;
  let mount: TlsMount;
  before(async () => {
    stack = await startTlsStack({ maxPayload: MAX_PAYLOAD });
    writeFileSync(join(stack.exportDirs.home, "big.bin"), randomBytes(300_000));
    mount = await stack.mount("alice", "home");
  });
  after(async () => {
    await stack?.teardown();
  });

  it("answers a read whose reply would exceed max_payload with EMSGSIZE, not silence", async () => {
    const alice = await stack.connectAs("alice");
    const opened = await rawRequest<ServerHandle>(alice, requestSubject("home", "alice", "open"), { path: "/big.bin", flags: 0 });
    assert.ok("reply" in opened && opened.reply.errno === 0, JSON.stringify(opened));
    const handle = opened.reply.result!;
    const read = await rawRequest(alice, requestSubject("home", "alice", "read", handle.instance), { handle: handle.handle, offset: 0, length: 100_000 });
    assert.ok("reply" in read && read.reply.errno === ERRNO.EMSGSIZE, JSON.stringify(read));
    assert.match(String(read.reply.message), /max_payload/);
    const big = await rawRequest(alice, requestSubject("home", "alice", "getattr"), encodeRequest({ id: "x:1", deadline: Date.now() + 60_000, args: { path: "/" + "a".repeat(MAX_PAYLOAD) } }, requestSubject("home", "alice", "getattr")));
    assert.deepEqual(big, { code: "MAX_PAYLOAD_EXCEEDED" });
  });

  it("splits the mount's reads and writes to fit the bus's max_payload", async (t) => {
    // FUSE hands the client 128 KiB writes and reads: each must travel in pieces on this bus.
    const source = join(stack.exportDirs.home, "..", "source.bin");
    writeFileSync(source, randomBytes(256 * 1024));
    const written = join(mount.mountpoint, "written.bin");
    const write = await run("dd", [`if=${source}`, `of=${written}`, "bs=128k", "conv=fsync"], { timeoutMs: 60_000 });
    t.diagnostic(`dd write: exit ${write.code}: ${write.stderr.trim().split("\n")[0]}`);
    assert.equal(write.timedOut, false, "the write hung");
    assert.equal(write.code, 0, write.stderr);
    assert.ok(readFileSync(join(stack.exportDirs.home, "written.bin")).equals(readFileSync(source)), "the server's copy differs");

    const read = await run("dd", [`if=${join(mount.mountpoint, "big.bin")}`, "of=/dev/null", "bs=128k"], { timeoutMs: 60_000 });
    assert.equal(read.timedOut, false, "the read hung");
    assert.equal(read.code, 0, read.stderr);
    assert.ok((await readFile(join(mount.mountpoint, "big.bin"))).equals(readFileSync(join(stack.exportDirs.home, "big.bin"))), "read back different bytes");
    // The mount is still usable for requests that fit.
    await writeFile(join(mount.mountpoint, "small.txt"), "fits\n");
    assert.equal(readFileSync(join(stack.exportDirs.home, "small.txt"), "utf8"), "fits\n");
  });
});

/**
 * Unit tests of the client's pure logic: retry policy, handle table and rename tracking, write-behind,
 * the missing-xattr cache and the fuse adapter's statfs and fsname helpers. No bus, no mount.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, NatsError } from "nats";
import { DamagedFrameError, ERRNO, FsError, OPS, OP_NAMES, type ServerHandle, type StatFs } from "../src/protocol/index.js";
import { KERNEL_MAX_IO, fitStatfs, fsnameWithRiders } from "../src/client/fuse-adapter.js";
import { HandleTable, pathAfterRename, type OpenFile } from "../src/client/handles.js";
import { alreadyDoneErrno, backoffDelay, classifyAttemptError } from "../src/client/retry.js";
import type { Rpc } from "../src/client/rpc.js";
import { WriteBehind } from "../src/client/writer.js";

/** Lets every queued promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("backoffDelay", () => {
  const base = 50;
  const cap = 2_000;

  it("stays between half and all of the capped exponential ceiling", () => {
    for (let attempt = 1; attempt <= 40; attempt++) {
      const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
      const low = backoffDelay(attempt, base, cap, () => 0);
      const high = backoffDelay(attempt, base, cap, () => 0.999999);
      assert.equal(low, Math.round(ceiling / 2), `attempt ${attempt}`);
      assert.ok(high <= ceiling && high >= ceiling - 1, `attempt ${attempt}: ${high} vs ${ceiling}`);
      const mid = backoffDelay(attempt, base, cap, () => 0.5);
      assert.ok(mid >= low && mid <= high);
    }
  });

  it("grows exponentially until the cap and never beyond it", () => {
    assert.equal(backoffDelay(1, base, cap, () => 0), 25);
    assert.equal(backoffDelay(2, base, cap, () => 0), 50);
    assert.equal(backoffDelay(3, base, cap, () => 0), 100);
    assert.equal(backoffDelay(10, base, cap, () => 0), cap / 2);
    for (const attempt of [6, 7, 100, 10_000, Number.MAX_SAFE_INTEGER]) {
      const delay = backoffDelay(attempt, base, cap, () => 0.999999);
      assert.ok(Number.isFinite(delay) && delay <= cap, `attempt ${attempt}: ${delay}`);
    }
  });
});

describe("classifyAttemptError", () => {
  const natsError = (code: string) => NatsError.errorForCode(code);

  it("sends no-responders of a handle's instance elsewhere and retries it otherwise", () => {
    assert.deepEqual(classifyAttemptError(natsError(ErrorCode.NoResponders), true, 1, 2), {
      kind: "instance_gone",
      reason: "no_responders",
    });
    assert.deepEqual(classifyAttemptError(natsError(ErrorCode.NoResponders), false, 1, 2), {
      kind: "retry",
      reason: "no_responders",
    });
  });

  it("gives up on an instance only after its allowed timeouts", () => {
    const timeout = natsError(ErrorCode.Timeout);
    assert.deepEqual(classifyAttemptError(timeout, true, 1, 2), { kind: "retry", reason: "timeout" });
    assert.deepEqual(classifyAttemptError(timeout, true, 2, 2), { kind: "instance_gone", reason: "timeout" });
    assert.deepEqual(classifyAttemptError(timeout, true, 3, 2), { kind: "instance_gone", reason: "timeout" });
    assert.deepEqual(classifyAttemptError(timeout, false, 50, 2), { kind: "retry", reason: "timeout" });
  });

  it("fails at once on bus refusals, with an errno and the bus's message", () => {
    for (const instanceBound of [true, false]) {
      const denied = classifyAttemptError(natsError(ErrorCode.PermissionsViolation), instanceBound, 1, 2);
      assert.equal(denied.kind, "fatal");
      assert.equal(denied.kind === "fatal" && denied.errno, ERRNO.EACCES);
      assert.match(denied.kind === "fatal" ? denied.message : "", /PERMISSIONS_VIOLATION/);
      const tooBig = classifyAttemptError(natsError(ErrorCode.MaxPayloadExceeded), instanceBound, 1, 2);
      assert.equal(tooBig.kind === "fatal" && tooBig.errno, ERRNO.EFBIG);
      for (const code of [ErrorCode.ConnectionClosed, ErrorCode.ConnectionDraining]) {
        const closed = classifyAttemptError(natsError(code), instanceBound, 1, 2);
        assert.equal(closed.kind === "fatal" && closed.errno, ERRNO.EIO, code);
      }
    }
  });

  it("resends a damaged frame, even one addressed to an instance, without giving up on the instance", () => {
    for (const attempts of [1, 2, 10]) {
      assert.deepEqual(classifyAttemptError(new DamagedFrameError("checksum mismatch"), true, attempts, 2), { kind: "retry", reason: "damaged" });
    }
  });

  it("retries disconnects and anything unknown", () => {
    for (const instanceBound of [true, false]) {
      assert.deepEqual(classifyAttemptError(natsError(ErrorCode.Disconnect), instanceBound, 5, 2), {
        kind: "retry",
        reason: "disconnected",
      });
      for (const junk of [new Error("odd"), "text", undefined, null, { code: 42 }]) {
        assert.deepEqual(classifyAttemptError(junk, instanceBound, 1, 2), { kind: "retry", reason: "busy" });
      }
    }
  });
});

describe("alreadyDoneErrno", () => {
  it("names the errno of a repeated effect for every non-idempotent op except create", () => {
    assert.equal(alreadyDoneErrno("unlink"), ERRNO.ENOENT);
    assert.equal(alreadyDoneErrno("rmdir"), ERRNO.ENOENT);
    assert.equal(alreadyDoneErrno("rename"), ERRNO.ENOENT);
    assert.equal(alreadyDoneErrno("removexattr"), ERRNO.ENODATA);
    for (const op of ["mkdir", "symlink", "link", "mknod"] as const) assert.equal(alreadyDoneErrno(op), ERRNO.EEXIST, op);
    // create returns a new handle: an EEXIST there cannot be turned into success.
    assert.equal(alreadyDoneErrno("create"), undefined);
    for (const op of OP_NAMES) {
      if (OPS[op].idempotent) assert.equal(alreadyDoneErrno(op), undefined, op);
      else if (op !== "create") assert.notEqual(alreadyDoneErrno(op), undefined, op);
    }
  });
});

describe("pathAfterRename", () => {
  it("moves the entry itself and everything below it", () => {
    assert.equal(pathAfterRename("/a", "/a", "/b"), "/b");
    assert.equal(pathAfterRename("/a/x", "/a", "/b"), "/b/x");
    assert.equal(pathAfterRename("/a/x/y", "/a", "/c/d"), "/c/d/x/y");
    assert.equal(pathAfterRename("/d/a/x", "/d/a", "/e"), "/e/x");
  });

  it("leaves paths that merely share a prefix, parents and strangers alone", () => {
    assert.equal(pathAfterRename("/ab", "/a", "/b"), undefined);
    assert.equal(pathAfterRename("/ab/x", "/a", "/b"), undefined);
    assert.equal(pathAfterRename("/", "/a", "/b"), undefined);
    assert.equal(pathAfterRename("/x", "/a", "/b"), undefined);
    assert.equal(pathAfterRename("/d", "/d/a", "/e"), undefined);
  });
});

describe("HandleTable", () => {
  const rpcA = {} as Rpc;
  const rpcB = {} as Rpc;
  const server: ServerHandle = { instance: "i", epoch: "e", handle: 1 };
  const entry = (rpc: Rpc, path: string): Omit<OpenFile, "fh"> => ({ kind: "file", rpc, path, flags: 0, server });

  it("hands out small numbers and reuses released ones", () => {
    const table = new HandleTable();
    const [a, b, c] = [table.add(entry(rpcA, "/a")), table.add(entry(rpcA, "/b")), table.add(entry(rpcA, "/c"))];
    assert.deepEqual([a.fh, b.fh, c.fh], [1, 2, 3]);
    table.remove(b.fh);
    assert.equal(table.get(b.fh), undefined);
    assert.equal(table.size, 2);
    const d = table.add(entry(rpcA, "/d"));
    assert.equal(d.fh, 2);
    assert.equal(table.get(2)?.path, "/d");
    for (const fh of [1, 2, 3]) table.remove(fh);
    assert.equal(table.size, 0);
    const again = [1, 2, 3].map(() => table.add(entry(rpcA, "/x")).fh).sort();
    assert.deepEqual(again, [1, 2, 3]);
    assert.equal(table.add(entry(rpcA, "/y")).fh, 4);
  });

  it("does not hand out one number twice after a double release", () => {
    const table = new HandleTable();
    const a = table.add(entry(rpcA, "/a"));
    table.remove(a.fh);
    table.remove(a.fh);
    const first = table.add(entry(rpcA, "/b"));
    const second = table.add(entry(rpcA, "/c"));
    assert.notEqual(first.fh, second.fh);
    assert.equal(table.get(first.fh)?.path, "/b");
    assert.equal(table.get(second.fh)?.path, "/c");
  });

  it("follows renames in its own export only, for the entry and its children", () => {
    const table = new HandleTable();
    const moved = table.add(entry(rpcA, "/dir"));
    const child = table.add(entry(rpcA, "/dir/file"));
    const sibling = table.add(entry(rpcA, "/dirt"));
    const other = table.add(entry(rpcB, "/dir/file"));
    table.renamed(rpcA, "/dir", "/new");
    assert.equal(moved.path, "/new");
    assert.equal(child.path, "/new/file");
    assert.equal(sibling.path, "/dirt");
    assert.equal(other.path, "/dir/file");
    assert.deepEqual(table.withPath(rpcA, "/new/file"), [child]);
    assert.deepEqual(table.withPath(rpcB, "/dir/file"), [other]);
    assert.equal(table.all().length, 4);
  });
});

/** A `send` whose calls wait until the test settles them. */
class FakeSend {
  readonly calls: { offset: number; data: Buffer; resolve: () => void; reject: (err: unknown) => void }[] = [];
  readonly send = (offset: number, data: Buffer): Promise<void> =>
    new Promise<void>((resolve, reject) => this.calls.push({ offset, data, resolve, reject }));

  get offsets(): number[] {
    return this.calls.map((c) => c.offset);
  }
}

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
function track(promise: Promise<void>): { done: boolean; error: unknown; promise: Promise<void> } {
  const state = { done: false, error: undefined as unknown, promise };
  promise.then(
    () => (state.done = true),
    (err: unknown) => {
      state.done = true;
      state.error = err;
    },
  );
  return state;
}

describe("WriteBehind", () => {
  const limits = { maxInFlight: 4, maxBytes: 1024 * 1024 };

  it("acknowledges non-overlapping writes at once and copies their data", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    const buffer = Buffer.from("hello");
    await writer.write(0, buffer);
    buffer.fill(0x21);
    await writer.write(5, Buffer.from("world"));
    assert.deepEqual(fake.offsets, [0, 5]);
    assert.equal(fake.calls[0]!.data.toString(), "hello");
    assert.equal(writer.idle, false);
    fake.calls.forEach((c) => c.resolve());
    await writer.drain();
    assert.equal(writer.idle, true);
  });

  it("sends an overlapping write only after the one it overlaps has finished", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    await writer.write(0, Buffer.alloc(10, 1));
    const second = track(writer.write(5, Buffer.alloc(10, 2)));
    await settle();
    assert.equal(fake.calls.length, 1);
    assert.equal(second.done, false);
    fake.calls[0]!.resolve();
    await second.promise;
    assert.deepEqual(fake.offsets, [0, 5]);
    fake.calls[1]!.resolve();
    await writer.drain();
  });

  it("keeps a chain of overlapping writes in call order", async () => {
    // B overlaps A and waits for it; C overlaps only B, which is not sent yet. C must still follow B,
    // or B's older bytes land on top of C's.
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    await writer.write(0, Buffer.alloc(10, 0xa)); // A: [0, 10)
    const b = track(writer.write(5, Buffer.alloc(15, 0xb))); // B: [5, 20)
    const c = track(writer.write(15, Buffer.alloc(10, 0xc))); // C: [15, 25)
    await settle();
    assert.deepEqual(fake.offsets, [0], "only A may be in flight while B waits for it");
    fake.calls[0]!.resolve();
    for (let i = 0; i < 10 && fake.calls.length < 3; i++) {
      await settle();
      fake.calls.slice(1).forEach((call) => call.resolve());
    }
    await Promise.all([b.promise, c.promise]);
    await writer.drain();
    assert.deepEqual(fake.offsets, [0, 5, 15]);
  });

  it("keeps overlapping writes in call order when the byte limit holds one back", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, { maxInFlight: 8, maxBytes: 100 });
    await writer.write(0, Buffer.alloc(60, 0xa)); // A: 60 bytes in flight
    const big = track(writer.write(100, Buffer.alloc(60, 0xb))); // waits: 120 bytes > 100
    const small = track(writer.write(100, Buffer.alloc(10, 0xc))); // same range, called later
    await settle();
    assert.deepEqual(fake.offsets, [0], "the later overlapping write must not overtake the held one");
    fake.calls[0]!.resolve();
    for (let i = 0; i < 10 && fake.calls.length < 3; i++) {
      await settle();
      fake.calls.slice(1).forEach((call) => call.resolve());
    }
    await Promise.all([big.promise, small.promise]);
    await writer.drain();
    assert.deepEqual(
      fake.calls.map((call) => call.data.length),
      [60, 60, 10],
    );
  });

  it("never has more than maxInFlight writes in flight", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, { maxInFlight: 3, maxBytes: 1024 * 1024 });
    const writes = Array.from({ length: 10 }, (_, i) => track(writer.write(i * 100, Buffer.alloc(10, i))));
    let finished = 0;
    for (let round = 0; round < 50 && finished < 10; round++) {
      await settle();
      const inFlight = fake.calls.length - finished;
      assert.ok(inFlight <= 3, `${inFlight} writes in flight`);
      if (inFlight > 0) {
        fake.calls[finished]!.resolve();
        finished += 1;
      }
    }
    assert.equal(finished, 10);
    await Promise.all(writes.map((w) => w.promise));
    await writer.drain();
    assert.deepEqual(fake.offsets, Array.from({ length: 10 }, (_, i) => i * 100));
  });

  it("holds a write back while the byte limit is used, but lets one oversized write through alone", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, { maxInFlight: 8, maxBytes: 100 });
    await writer.write(0, Buffer.alloc(80));
    const held = track(writer.write(1000, Buffer.alloc(30)));
    await settle();
    assert.equal(held.done, false);
    assert.equal(fake.calls.length, 1);
    fake.calls[0]!.resolve();
    await held.promise;
    fake.calls[1]!.resolve();
    await writer.drain();
    await writer.write(0, Buffer.alloc(500));
    assert.equal(fake.calls.length, 3);
    fake.calls[2]!.resolve();
    await writer.drain();
  });

  it("reports the first failure once, on the next write, then carries on", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    await writer.write(0, Buffer.alloc(10));
    await writer.write(10, Buffer.alloc(10));
    fake.calls[0]!.reject(new FsError(ERRNO.ENOSPC!, "disk full"));
    fake.calls[1]!.reject(new FsError(ERRNO.EDQUOT!, "quota"));
    await settle();
    await assert.rejects(writer.write(20, Buffer.alloc(10)), (err: unknown) => err instanceof FsError && err.errno === ERRNO.ENOSPC);
    assert.equal(fake.calls.length, 2, "the failing write is not sent");
    await writer.write(20, Buffer.alloc(10));
    fake.calls[2]!.resolve();
    await writer.drain();
  });

  it("reports a failure once on drain, and turns foreign errors into EIO", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    await writer.write(0, Buffer.alloc(10));
    fake.calls[0]!.reject(new Error("socket gone"));
    await assert.rejects(writer.drain(), (err: unknown) => err instanceof FsError && err.errno === ERRNO.EIO && /socket gone/.test(err.message));
    await writer.drain();
    await writer.write(0, Buffer.alloc(10));
    fake.calls[1]!.resolve();
    await writer.drain();
  });

  it("drains only when every queued write has finished", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, limits);
    for (let i = 0; i < 4; i++) await writer.write(i * 10, Buffer.alloc(10));
    const drained = track(writer.drain());
    for (const call of fake.calls.slice(0, 3).reverse()) {
      call.resolve();
      await settle();
      assert.equal(drained.done, false);
    }
    fake.calls[3]!.resolve();
    await drained.promise;
    assert.equal(drained.error, undefined);
    assert.equal(writer.idle, true);
  });
  it("drains a write that was still held back when drain began", async () => {
    const fake = new FakeSend();
    const writer = new WriteBehind(fake.send, { maxInFlight: 1, maxBytes: 1024 * 1024 });
    await writer.write(0, Buffer.alloc(10));
    const held = track(writer.write(100, Buffer.alloc(10)));
    const drained = track(writer.drain());
    await settle();
    fake.calls[0]!.resolve();
    await held.promise;
    await settle();
    assert.equal(fake.calls.length, 2);
    assert.equal(drained.done, false, "drain finished while the held write was in flight");
    fake.calls[1]!.resolve();
    await drained.promise;
    assert.equal(writer.idle, true);
  });
});

describe("fitStatfs", () => {
  const big: StatFs = {
    bsize: 4096,
    frsize: 4096,
    blocks: 2 ** 40,
    bfree: 2 ** 39 + 12_345,
    bavail: 2 ** 39 - 7,
    files: 2 ** 36,
    ffree: 2 ** 35,
    favail: 2 ** 35,
    namemax: 255,
  };

  it("scales a 2^40-block file system into 32-bit counts, keeping byte totals within one block", () => {
    const fitted = fitStatfs(big);
    for (const key of ["blocks", "bfree", "bavail", "files", "ffree", "favail"] as const) {
      assert.ok(Number.isInteger(fitted[key]) && fitted[key] >= 0 && fitted[key] <= 0xffffffff, `${key} = ${fitted[key]}`);
    }
    const factor = fitted.frsize / big.frsize;
    assert.ok(Number.isInteger(Math.log2(factor)) && factor > 1, `factor ${factor}`);
    for (const key of ["blocks", "bfree", "bavail"] as const) {
      const before = big[key] * big.frsize;
      const after = fitted[key] * fitted.frsize;
      assert.ok(after <= before && before - after < fitted.frsize, `${key}: ${before} -> ${after}`);
    }
    assert.equal(fitted.namemax, 255);
    assert.ok(fitted.ffree <= fitted.files);
  });

  it("leaves a file system that already fits untouched", () => {
    const small: StatFs = { ...big, blocks: 1_000_000, bfree: 500_000, bavail: 400_000, files: 65_536, ffree: 1_000, favail: 1_000 };
    assert.deepEqual(fitStatfs(small), small);
    const edge = { ...small, blocks: 0xffffffff };
    assert.deepEqual(fitStatfs(edge), edge);
  });
});

describe("fsnameWithRiders", () => {
  it("adds big_writes, max_write, use_ino and the cache timeouts (0 included) after a comma-free source name", () => {
    assert.equal(KERNEL_MAX_IO, 131072);
    const parts = fsnameWithRiders("natsfs:data,evil=1 x", { attrTimeoutS: 0, entryTimeoutS: 1 }).split(",");
    assert.equal(parts[0], "natsfs:data_evil=1_x");
    assert.deepEqual(parts.slice(1).sort(), ["attr_timeout=0", "big_writes", "entry_timeout=1", "max_write=131072", "use_ino"]);
  });
});

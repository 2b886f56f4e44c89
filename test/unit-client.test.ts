/**
 * Unit tests of the client's pure logic: retry policy, rename tracking and the fuse adapter's statfs and
 * fsname helpers. No bus, no mount. The VFS pieces have their own files (unit-writer, unit-reader...).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, NatsError } from "nats";
import { DamagedFrameError, ERRNO, FsError, OPS, OP_NAMES, type StatFs } from "../src/protocol/index.js";
import { KERNEL_MAX_IO, fitStatfs, fsnameWithRiders } from "../src/client/fuse-adapter.js";
import { pathAfterRename } from "../src/client/handle.js";
import { alreadyDoneErrno, backoffDelay, classifyAttemptError } from "../src/client/retry.js";

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

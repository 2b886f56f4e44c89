import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { lstat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ERRNO, FsError } from "../src/protocol/index.js";
import { makeDeepChain } from "./helpers/deep-chain.js";
import { O_PATH, PathRefused, withResolved } from "../src/server/confine.js";
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RESOLVE_CONFINED,
  UTIME_OMIT,
  fallocate,
  futimens,
  mknodat,
  openat2,
  renameat2,
  utimensat,
} from "../src/server/syscalls.js";

const DIRECTORY_PATH = O_PATH | constants.O_DIRECTORY;

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof FsError, `expected FsError, got ${String(err)}`);
    return err.errno;
  }
}

describe("syscalls", () => {
  let base: string;
  let baseFd: number;
  let outside: string;

  before(() => {
    base = mkdtempSync(join(tmpdir(), "natsfs-syscalls-"));
    outside = mkdtempSync(join(tmpdir(), "natsfs-syscalls-outside-"));
    mkdirSync(join(base, "a/b"), { recursive: true });
    symlinkSync(outside, join(base, "a/out"));
    symlinkSync("b", join(base, "a/inner"));
    baseFd = openSync(base, DIRECTORY_PATH);
  });

  after(() => {
    closeSync(baseFd);
    // rm walks with openat, so the deep chain below is no problem for it.
    spawnSync("rm", ["-rf", base, outside]);
  });

  describe("openat2 confined", () => {
    it("opens a directory below the dir fd, and the dir fd itself as '.'", async () => {
      for (const path of ["a/b", "a", "."]) {
        const fd = await openat2(baseFd, path, DIRECTORY_PATH, 0, RESOLVE_CONFINED);
        assert.ok(fd > 2);
        closeSync(fd);
      }
    });

    it("refuses any symlink, in the middle or at the end, even one that stays inside: ELOOP", async () => {
      for (const path of ["a/out", "a/out/x", "a/inner", "a/inner/x"]) {
        assert.equal(await errnoOf(openat2(baseFd, path, DIRECTORY_PATH, 0, RESOLVE_CONFINED)), ERRNO.ELOOP, path);
      }
    });

    it("refuses to climb out or jump out: EXDEV", async () => {
      for (const path of ["..", "a/../..", outside]) {
        assert.equal(await errnoOf(openat2(baseFd, path, DIRECTORY_PATH, 0, RESOLVE_CONFINED)), ERRNO.EXDEV, path);
      }
    });

    it("refuses magic links such as /proc/self/fd/N: ELOOP", async () => {
      const procSelf = openSync("/proc/self", DIRECTORY_PATH);
      try {
        assert.equal(await errnoOf(openat2(procSelf, `fd/${baseFd}`, DIRECTORY_PATH, 0, RESOLVE_CONFINED)), ERRNO.ELOOP);
      } finally {
        closeSync(procSelf);
      }
    });

    it("reports what is missing or not a directory with its own errno", async () => {
      assert.equal(await errnoOf(openat2(baseFd, "nothing/here", DIRECTORY_PATH, 0, RESOLVE_CONFINED)), ERRNO.ENOENT);
      writeFileSync(join(base, "file"), "x");
      assert.equal(await errnoOf(openat2(baseFd, "file/x", DIRECTORY_PATH, 0, RESOLVE_CONFINED)), ERRNO.ENOTDIR);
    });
  });

  describe("mknodat", () => {
    it("makes a FIFO and a Unix socket with the mode asked for (less the umask), EEXIST the second time", async () => {
      const umask = process.umask();
      await mknodat(baseFd, "fifo", constants.S_IFIFO | 0o640, 0);
      await mknodat(baseFd, "socket", constants.S_IFSOCK | 0o600, 0);
      const fifo = lstatSync(join(base, "fifo"));
      assert.ok(fifo.isFIFO());
      assert.equal(fifo.mode & 0o7777, 0o640 & ~umask);
      assert.ok(lstatSync(join(base, "socket")).isSocket());
      assert.equal(await errnoOf(mknodat(baseFd, "fifo", constants.S_IFIFO | 0o640, 0)), ERRNO.EEXIST);
      assert.equal(await errnoOf(mknodat(-1, "x", constants.S_IFIFO | 0o640, 0)), ERRNO.EBADF);
    });

    it("runs a burst far beyond koffi's own queue limit (256) without failing", async () => {
      mkdirSync(join(base, "burst"));
      const burstFd = openSync(join(base, "burst"), DIRECTORY_PATH);
      try {
        const names = Array.from({ length: 1000 }, (_, i) => `f${i}`);
        await Promise.all(names.map((name) => mknodat(burstFd, name, constants.S_IFIFO | 0o600, 0)));
        assert.ok(names.every((name) => lstatSync(join(base, "burst", name)).isFIFO()));
      } finally {
        closeSync(burstFd);
      }
    });
  });

  describe("fallocate", () => {
    it("allocates, keeps the size, punches holes and zeroes ranges", async () => {
      const path = join(base, "sparse");
      const fd = openSync(path, "w+");
      try {
        await fallocate(fd, 0, 0, 1 << 20);
        assert.equal(statSync(path).size, 1 << 20);
        await fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20);
        assert.equal(statSync(path).size, 1 << 20);
        assert.ok(statSync(path).blocks * 512 >= 2 << 20, "KEEP_SIZE still allocates");

        writeFileSync(path, Buffer.alloc(64 * 1024, 0x41));
        await fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 16 * 1024);
        await fallocate(fd, FALLOC_FL_ZERO_RANGE, 32 * 1024, 16 * 1024);
        const data = readFileSync(path);
        assert.equal(data.length, 64 * 1024);
        assert.ok(data.subarray(0, 16 * 1024).every((b) => b === 0), "punched range reads as zeros");
        assert.ok(data.subarray(16 * 1024, 32 * 1024).every((b) => b === 0x41));
        assert.ok(data.subarray(32 * 1024, 48 * 1024).every((b) => b === 0), "zeroed range reads as zeros");
        assert.ok(data.subarray(48 * 1024).every((b) => b === 0x41));
        assert.equal(await errnoOf(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)), ERRNO.EOPNOTSUPP, "PUNCH_HOLE needs KEEP_SIZE");
      } finally {
        closeSync(fd);
      }
    });
  });

  describe("renameat2", () => {
    it("NOREPLACE refuses an existing target, EXCHANGE swaps two entries atomically", async () => {
      writeFileSync(join(base, "one"), "1");
      writeFileSync(join(base, "two"), "2");
      assert.equal(await errnoOf(renameat2(baseFd, "one", baseFd, "two", RENAME_NOREPLACE)), ERRNO.EEXIST);
      await renameat2(baseFd, "one", baseFd, "two", RENAME_EXCHANGE);
      assert.equal(readFileSync(join(base, "one"), "utf8"), "2");
      assert.equal(readFileSync(join(base, "two"), "utf8"), "1");
      await renameat2(baseFd, "one", baseFd, "three", RENAME_NOREPLACE);
      assert.equal(readFileSync(join(base, "three"), "utf8"), "2");
      assert.equal(await errnoOf(renameat2(baseFd, "one", baseFd, "four", RENAME_EXCHANGE)), ERRNO.ENOENT, "EXCHANGE needs both");
    });
  });

  describe("utimensat and futimens", () => {
    it("set times to the nanosecond, a symlink's own times rather than its target's", async () => {
      writeFileSync(join(base, "timed"), "");
      symlinkSync("timed", join(base, "timed-link"));
      await utimensat(baseFd, "timed-link", { sec: 1, nsec: 123_456_789 }, { sec: 2, nsec: 987_654_321 });
      const link = lstatSync(join(base, "timed-link"), { bigint: true });
      assert.equal(link.atimeNs, 1_123_456_789n);
      assert.equal(link.mtimeNs, 2_987_654_321n);
      assert.notEqual(statSync(join(base, "timed"), { bigint: true }).mtimeNs, 2_987_654_321n, "the target is untouched");

      const fd = openSync(join(base, "timed"), "r");
      try {
        await futimens(fd, { sec: 1_700_000_000, nsec: 1 }, { sec: 1_700_000_001, nsec: 999_999_999 });
        await futimens(fd, { sec: 0, nsec: UTIME_OMIT }, { sec: 1_700_000_002, nsec: 5 });
      } finally {
        closeSync(fd);
      }
      const file = statSync(join(base, "timed"), { bigint: true });
      assert.equal(file.atimeNs, 1_700_000_000_000_000_001n, "UTIME_OMIT kept atime");
      assert.equal(file.mtimeNs, 1_700_000_002_000_000_005n);
      assert.equal(await errnoOf(utimensat(baseFd, "missing", { sec: 0, nsec: 0 }, { sec: 0, nsec: 0 })), ERRNO.ENOENT);
    });
  });

  describe("withResolved (confinement on openat2)", () => {
    it("resolves a 2,000-level path with one system call, holding the event loop for under 5 ms of CPU", async () => {
      mkdirSync(join(base, "deep"));
      const path = "/deep" + makeDeepChain(join(base, "deep"), 2000);
      // CPU time, not wall time, so a loaded machine cannot make it fail: the old walk, 4,000 system
      // calls before its first await, cost 15 ms and more of it. The process's other threads (GC)
      // count too, so the least of a few warm runs is what is compared.
      const heldMs: number[] = [];
      for (let run = 0; run < 5; run += 1) {
        const cpuBefore = process.cpuUsage();
        const resolving = withResolved(base, path, async (r) => (await lstat(r.leafPath)).isDirectory());
        const cpu = process.cpuUsage(cpuBefore);
        heldMs.push((cpu.user + cpu.system) / 1000);
        assert.equal(await resolving, true);
      }
      assert.ok(Math.min(...heldMs) < 5, `held the event loop for ${heldMs.join(", ")} ms of CPU`);
    });

    it("refuses a symlink on the way with ELOOP and .. with EACCES, both as PathRefused", async () => {
      for (const [path, errno] of [["/a/out/x", ERRNO.ELOOP], ["/a/inner/x", ERRNO.ELOOP], ["/a/../a/b", ERRNO.EACCES]] as const) {
        await assert.rejects(withResolved(base, path, async () => assert.fail("must not be reached")), (err) => err instanceof PathRefused && err.errno === errno, path);
      }
    });
  });
});

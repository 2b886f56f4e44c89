/**
 * Every file-system operation and the errnos applications rely on, through a real FUSE mount of a
 * real natsfs server, checked against the exported directory on disk.
 */
import assert from "node:assert/strict";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { assertSameMs, errnoOf, mustRun } from "./fixtures/posix-common.js";
import { run, runAs, startStack, type Stack } from "./helpers/mount.js";

const NOBODY = 65534;

describe("POSIX operations through the mount", { timeout: 240_000 }, () => {
  let stack: Stack;
  /** Path inside the mount. */
  let m: (...parts: string[]) => string;
  /** The same path in the exported directory on the server's disk. */
  let d: (...parts: string[]) => string;

  before(async () => {
    stack = await startStack({ insecure: true });
    m = (...parts) => join(stack.mountpoint, ...parts);
    d = (...parts) => join(stack.exportDir, ...parts);
  }, { timeout: 60_000 });

  after(async () => {
    await stack?.teardown();
  }, { timeout: 60_000 });

  it("stat/getattr matches the file on disk", { timeout: 20_000 }, async () => {
    const content = Buffer.from("stat me\n");
    await fs.writeFile(m("stat.txt"), content);
    const viaMount = await fs.stat(m("stat.txt"));
    const onDisk = await fs.stat(d("stat.txt"));
    assert.ok(viaMount.isFile());
    assert.equal(viaMount.size, content.length);
    assert.equal(viaMount.mode, onDisk.mode);
    assert.equal(viaMount.uid, onDisk.uid);
    assert.equal(viaMount.gid, onDisk.gid);
    assert.equal(viaMount.nlink, 1);
    assertSameMs(viaMount.mtimeMs, onDisk.mtimeMs, "mtime");
    assert.ok((await fs.stat(stack.mountpoint)).isDirectory());
  });

  it("fstat on an open descriptor (fgetattr) sees its own writes", { timeout: 20_000 }, async () => {
    const file = await fs.open(m("fstat.bin"), "w+");
    try {
      await file.write(Buffer.alloc(12345, 7));
      await file.sync();
      const stats = await file.stat();
      assert.ok(stats.isFile());
      assert.equal(stats.size, 12345);
    } finally {
      await file.close();
    }
  });

  it("fstat and reads of an open file go by its handle, even after another client removed its name", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("elsewhere.bin"), Buffer.alloc(5000, 3));
    const file = await fs.open(m("elsewhere.bin"), "r");
    try {
      await fs.unlink(d("elsewhere.bin")); // as another client would: straight on the server's disk
      const stats = await file.stat();
      assert.equal(stats.size, 5000); // (nlink shows 1, not 0: fuse-native turns a 0 into 1)
      const { bytesRead, buffer } = await file.read(Buffer.alloc(5000), 0, 5000, 0);
      assert.equal(bytesRead, 5000);
      assert.ok(buffer.equals(Buffer.alloc(5000, 3)));
    } finally {
      await file.close();
    }
  });

  it("appends larger than one kernel write land whole and in order", { timeout: 30_000 }, async () => {
    const pieces = [300_000, 1, 131_072, 700_000].map((size, i) => Buffer.alloc(size, 65 + i));
    for (const piece of pieces) await fs.appendFile(m("appended.bin"), piece);
    const expected = Buffer.concat(pieces);
    assert.ok((await fs.readFile(d("appended.bin"))).equals(expected), "the server's copy");
    assert.ok((await fs.readFile(m("appended.bin"))).equals(expected), "read back through the mount");
  });

  it("access with F_OK, R_OK, W_OK, X_OK", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("access.sh"), "#!/bin/sh\necho hi\n");
    await fs.chmod(m("access.sh"), 0o644);
    assert.equal(await errnoOf(() => fs.access(m("access.sh"), constants.F_OK)), "ok");
    assert.equal(await errnoOf(() => fs.access(m("access.sh"), constants.R_OK | constants.W_OK)), "ok");
    // even root may not execute a file without any x bit
    assert.equal(await errnoOf(() => fs.access(m("access.sh"), constants.X_OK)), "EACCES");
    await fs.chmod(m("access.sh"), 0o755);
    assert.equal(await errnoOf(() => fs.access(m("access.sh"), constants.X_OK)), "ok");
    assert.equal(await errnoOf(() => fs.access(m("no-such-file"), constants.F_OK)), "ENOENT");
    assert.equal((await mustRun(m("access.sh"), [])).trim(), "hi");
  });

  it("readdir lists exactly the entries on disk", { timeout: 30_000 }, async () => {
    await fs.mkdir(m("listing"));
    const names = Array.from({ length: 300 }, (_, i) => `entry-${String(i).padStart(3, "0")}`);
    for (const name of names) await fs.writeFile(m("listing", name), name);
    await fs.mkdir(m("listing", "sub"));
    const expected = [...names, "sub"].sort();
    assert.deepEqual((await fs.readdir(m("listing"))).sort(), expected);
    assert.deepEqual((await fs.readdir(d("listing"))).sort(), expected);
    const typed = await fs.readdir(m("listing"), { withFileTypes: true });
    assert.ok(typed.find((e) => e.name === "sub")?.isDirectory());
    assert.ok(typed.find((e) => e.name === "entry-000")?.isFile());
  });

  it("create, write, flush, fsync, read, close", { timeout: 30_000 }, async () => {
    const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31 + 7) & 0xff));
    const file = await fs.open(m("rw.bin"), "wx+");
    try {
      await file.write(data, 0, data.length, 0);
      await file.sync();
      const back = Buffer.alloc(data.length);
      const { bytesRead } = await file.read(back, 0, back.length, 0);
      assert.equal(bytesRead, data.length);
      assert.ok(back.equals(data), "read back through the same descriptor");
      const middle = Buffer.alloc(100);
      await file.read(middle, 0, 100, 1_000_000);
      assert.ok(middle.equals(data.subarray(1_000_000, 1_000_100)));
    } finally {
      await file.close();
    }
    assert.ok((await fs.readFile(d("rw.bin"))).equals(data), "on disk after close");
    assert.ok((await fs.readFile(m("rw.bin"))).equals(data), "reopened through the mount");
    // append mode
    await fs.appendFile(m("rw.bin"), "tail");
    assert.equal((await fs.readFile(d("rw.bin"))).subarray(-4).toString(), "tail");
  });

  it("truncate and ftruncate grow and shrink", { timeout: 30_000 }, async () => {
    const original = Buffer.from("0123456789abcdef");
    await fs.writeFile(m("trunc.bin"), original);
    await fs.truncate(m("trunc.bin"), 4);
    assert.deepEqual(await fs.readFile(m("trunc.bin")), original.subarray(0, 4));
    await fs.truncate(m("trunc.bin"), 100_000);
    const grown = await fs.readFile(m("trunc.bin"));
    assert.equal(grown.length, 100_000);
    assert.ok(grown.subarray(0, 4).equals(original.subarray(0, 4)));
    assert.ok(grown.subarray(4).equals(Buffer.alloc(100_000 - 4)), "grown part reads as zeros");
    assert.ok((await fs.readFile(d("trunc.bin"))).equals(grown));

    const file = await fs.open(m("trunc.bin"), "r+");
    try {
      await file.truncate(10);
      assert.equal((await file.stat()).size, 10);
      await file.truncate(20);
      await file.write(Buffer.from("X"), 0, 1, 19);
      await file.sync();
    } finally {
      await file.close();
    }
    const expected = Buffer.concat([original.subarray(0, 4), Buffer.alloc(15), Buffer.from("X")]);
    assert.deepEqual(await fs.readFile(m("trunc.bin")), expected);
    assert.deepEqual(await fs.readFile(d("trunc.bin")), expected);
    // O_TRUNC on open
    await fs.writeFile(m("trunc.bin"), "new");
    assert.equal(await fs.readFile(d("trunc.bin"), "utf8"), "new");
  });

  it("unlink removes the file", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("gone.txt"), "x");
    await fs.unlink(m("gone.txt"));
    assert.equal(await errnoOf(() => fs.stat(m("gone.txt"))), "ENOENT");
    assert.equal(await errnoOf(() => fs.stat(d("gone.txt"))), "ENOENT");
    assert.equal(await errnoOf(() => fs.unlink(m("gone.txt"))), "ENOENT");
  });

  it("rename replaces an existing target and moves directories", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("ren-src"), "new content");
    await fs.writeFile(m("ren-dst"), "old content that is longer");
    await fs.rename(m("ren-src"), m("ren-dst"));
    assert.equal(await fs.readFile(m("ren-dst"), "utf8"), "new content");
    assert.equal(await fs.readFile(d("ren-dst"), "utf8"), "new content");
    assert.equal(await errnoOf(() => fs.stat(m("ren-src"))), "ENOENT");

    await fs.mkdir(m("ren-dir", "inner"), { recursive: true });
    await fs.writeFile(m("ren-dir", "inner", "f"), "in a dir");
    await fs.rename(m("ren-dir"), m("ren-dir-moved"));
    assert.equal(await fs.readFile(m("ren-dir-moved", "inner", "f"), "utf8"), "in a dir");
    assert.equal(await fs.readFile(d("ren-dir-moved", "inner", "f"), "utf8"), "in a dir");
    assert.equal(await errnoOf(() => fs.stat(m("ren-dir"))), "ENOENT");
    // a file moves into another directory
    await fs.rename(m("ren-dst"), m("ren-dir-moved", "inner", "moved"));
    assert.equal(await fs.readFile(d("ren-dir-moved", "inner", "moved"), "utf8"), "new content");
  });

  it("mkdir and rmdir", { timeout: 20_000 }, async () => {
    await fs.mkdir(m("dir-a"), { mode: 0o750 });
    assert.ok((await fs.stat(m("dir-a"))).isDirectory());
    assert.ok((await fs.stat(d("dir-a"))).isDirectory());
    assert.equal((await fs.stat(d("dir-a"))).mode & 0o777, 0o750 & ~process.umask());
    await fs.mkdir(m("dir-a", "b", "c"), { recursive: true });
    await fs.rmdir(m("dir-a", "b", "c"));
    await fs.rmdir(m("dir-a", "b"));
    await fs.rmdir(m("dir-a"));
    assert.equal(await errnoOf(() => fs.stat(d("dir-a"))), "ENOENT");
  });

  it("symlink and readlink with relative and absolute targets", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("link-target.txt"), "pointed at");
    await fs.symlink("link-target.txt", m("rel-link"));
    await fs.symlink("/etc/hostname", m("abs-link"));
    assert.equal(await fs.readlink(m("rel-link")), "link-target.txt");
    assert.equal(await fs.readlink(m("abs-link")), "/etc/hostname");
    assert.equal(await fs.readlink(d("rel-link")), "link-target.txt");
    assert.equal(await fs.readlink(d("abs-link")), "/etc/hostname");
    assert.ok((await fs.lstat(m("rel-link"))).isSymbolicLink());
    assert.ok((await fs.lstat(m("abs-link"))).isSymbolicLink());
    assert.equal(await fs.readFile(m("rel-link"), "utf8"), "pointed at");
    assert.equal(await fs.readFile(m("abs-link"), "utf8"), await fs.readFile("/etc/hostname", "utf8"));
    await fs.mkdir(m("links"));
    await fs.symlink("../link-target.txt", m("links", "up-link"));
    assert.equal(await fs.readFile(m("links", "up-link"), "utf8"), "pointed at");
  });

  it("link gives nlink 2 on both names, back to 1 after unlinking one", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("hard-a"), "shared");
    await fs.link(m("hard-a"), m("hard-b"));
    const a = await fs.stat(m("hard-a"));
    const b = await fs.stat(m("hard-b"));
    assert.equal(a.nlink, 2);
    assert.equal(b.nlink, 2);
    assert.equal((await fs.stat(d("hard-a"))).ino, (await fs.stat(d("hard-b"))).ino);
    await fs.unlink(m("hard-a"));
    assert.equal((await fs.stat(m("hard-b"))).nlink, 1);
    assert.equal(await fs.readFile(m("hard-b"), "utf8"), "shared");
  });

  it("a write through one hard-link name is read at once through the other", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("coherent-a"), "shared");
    await fs.link(m("coherent-a"), m("coherent-b"));
    assert.equal(await fs.readFile(m("coherent-b"), "utf8"), "shared");
    assert.equal((await fs.stat(m("coherent-b"))).size, 6);
    await fs.appendFile(m("coherent-a"), "+more");
    assert.equal(await fs.readFile(d("coherent-b"), "utf8"), "shared+more", "on disk");
    assert.equal(await fs.readFile(m("coherent-b"), "utf8"), "shared+more", "through the other name");
  });

  it("chmod sets the mode bits", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("mode.txt"), "m");
    for (const mode of [0o600, 0o640, 0o755, 0o4711, 0o000]) {
      await fs.chmod(m("mode.txt"), mode);
      assert.equal((await fs.stat(m("mode.txt"))).mode & 0o7777, mode, `mount shows ${mode.toString(8)}`);
      assert.equal((await fs.stat(d("mode.txt"))).mode & 0o7777, mode, `disk has ${mode.toString(8)}`);
    }
  });

  it("chown as root to 1234:1234", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("owned.txt"), "o");
    await fs.chown(m("owned.txt"), 1234, 1234);
    const viaMount = await fs.stat(m("owned.txt"));
    assert.equal(viaMount.uid, 1234);
    assert.equal(viaMount.gid, 1234);
    const onDisk = await fs.stat(d("owned.txt"));
    assert.equal(onDisk.uid, 1234);
    assert.equal(onDisk.gid, 1234);
  });

  it("utimens sets atime and mtime with millisecond precision", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("times.txt"), "t");
    const atime = new Date(1_600_000_000_123);
    const mtime = new Date(1_500_000_000_456);
    await fs.utimes(m("times.txt"), atime, mtime);
    const viaMount = await fs.stat(m("times.txt"));
    assertSameMs(viaMount.mtimeMs, mtime.getTime(), "mtime through the mount");
    assertSameMs(viaMount.atimeMs, atime.getTime(), "atime through the mount");
    const onDisk = await fs.stat(d("times.txt"));
    assertSameMs(onDisk.mtimeMs, mtime.getTime(), "mtime on disk");
    assertSameMs(onDisk.atimeMs, atime.getTime(), "atime on disk");
  });

  it("statfs and df report the exported file system", { timeout: 20_000 }, async () => {
    const viaMount = await fs.statfs(stack.mountpoint);
    const onDisk = await fs.statfs(stack.exportDir);
    const bytes = (s: { bsize: number }, blocks: number) => s.bsize * blocks;
    // other processes write on the same disk meanwhile: free space may move a little
    const slack = 256 * 1024 * 1024;
    assert.equal(bytes(viaMount, viaMount.blocks), bytes(onDisk, onDisk.blocks), "total bytes");
    assert.ok(Math.abs(bytes(viaMount, viaMount.bfree) - bytes(onDisk, onDisk.bfree)) < slack, "free bytes");
    assert.ok(Math.abs(bytes(viaMount, viaMount.bavail) - bytes(onDisk, onDisk.bavail)) < slack, "available bytes");
    assert.equal(viaMount.files, onDisk.files, "inodes");
    assert.ok(Math.abs(viaMount.ffree - onDisk.ffree) < 100_000, "free inodes");

    const dfTotal = async (path: string) => {
      const lines = (await mustRun("df", ["-B1", "--output=size,used,avail", path])).trim().split("\n");
      return lines[1]!.trim().split(/\s+/).map(Number);
    };
    const [mountSize, , mountAvail] = await dfTotal(stack.mountpoint);
    const [diskSize, , diskAvail] = await dfTotal(stack.exportDir);
    assert.equal(mountSize, diskSize, "df size");
    assert.ok(Math.abs(mountAvail! - diskAvail!) < slack, "df avail");
  });

  it("mknod makes FIFOs and regular files", { timeout: 20_000 }, async () => {
    await mustRun("mkfifo", [m("fifo-a")]);
    assert.ok((await fs.lstat(m("fifo-a"))).isFIFO());
    assert.ok((await fs.lstat(d("fifo-a"))).isFIFO());
    await mustRun("mknod", [m("fifo-b"), "p"]);
    assert.ok((await fs.lstat(m("fifo-b"))).isFIFO());
    // mknod(2) with S_IFREG reaches the file system as MKNOD, not CREATE
    await mustRun("python3", ["-c", "import os,stat,sys; os.mknod(sys.argv[1], stat.S_IFREG | 0o640)", m("mknod-reg")]);
    const regular = await fs.lstat(m("mknod-reg"));
    assert.ok(regular.isFile());
    assert.equal(regular.size, 0);
    assert.equal((await fs.lstat(d("mknod-reg"))).mode & 0o777, 0o640 & ~process.umask());
  });

  it("extended attributes: set, get, list, remove, ENODATA", { timeout: 20_000 }, async () => {
    await fs.writeFile(m("xattr.txt"), "x");
    await mustRun("setfattr", ["-n", "user.foo", "-v", "bar-value", m("xattr.txt")]);
    await mustRun("setfattr", ["-n", "user.other", "-v", "0x00ff10", m("xattr.txt")]);
    assert.equal(await mustRun("getfattr", ["--only-values", "-n", "user.foo", m("xattr.txt")]), "bar-value");
    assert.equal(await mustRun("getfattr", ["--only-values", "-n", "user.foo", d("xattr.txt")]), "bar-value");
    const other = await mustRun("getfattr", ["-e", "hex", "-n", "user.other", m("xattr.txt")]);
    assert.match(other, /user\.other=0x00ff10/);
    const listed = await mustRun("getfattr", ["-d", "-m", "^user\\.", m("xattr.txt")]);
    assert.match(listed, /user\.foo="bar-value"/);
    assert.match(listed, /user\.other=/);
    await mustRun("setfattr", ["-x", "user.foo", m("xattr.txt")]);
    const missing = await run("getfattr", ["-n", "user.foo", m("xattr.txt")]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such attribute/, "ENODATA for a removed attribute");
    const never = await run("getfattr", ["-n", "user.never-set", m("xattr.txt")]);
    assert.match(never.stderr, /No such attribute/, "ENODATA for a missing attribute");
    assert.doesNotMatch(await mustRun("getfattr", ["-d", "-m", "^user\\.", d("xattr.txt")]), /user\.foo/);
  });

  describe("errnos", () => {
    it("ENOENT: stat of a missing path", { timeout: 10_000 }, async () => {
      assert.equal(await errnoOf(() => fs.stat(m("missing"))), "ENOENT");
      assert.equal(await errnoOf(() => fs.stat(m("missing-dir", "file"))), "ENOENT");
      assert.equal(await errnoOf(() => fs.readFile(m("missing"))), "ENOENT");
    });

    it("EEXIST: mkdir of an existing name and O_CREAT|O_EXCL", { timeout: 10_000 }, async () => {
      await fs.mkdir(m("exists-dir"));
      await fs.writeFile(m("exists-file"), "keep me");
      assert.equal(await errnoOf(() => fs.mkdir(m("exists-dir"))), "EEXIST");
      assert.equal(await errnoOf(() => fs.mkdir(m("exists-file"))), "EEXIST");
      assert.equal(await errnoOf(() => fs.open(m("exists-file"), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY)), "EEXIST");
      assert.equal(await fs.readFile(d("exists-file"), "utf8"), "keep me");
    });

    it("ENOTEMPTY: rmdir of a non-empty directory", { timeout: 10_000 }, async () => {
      await fs.mkdir(m("full-dir"));
      await fs.writeFile(m("full-dir", "f"), "");
      assert.equal(await errnoOf(() => fs.rmdir(m("full-dir"))), "ENOTEMPTY");
      assert.ok((await fs.stat(d("full-dir", "f"))).isFile());
    });

    it("EISDIR: open a directory for writing", { timeout: 10_000 }, async () => {
      await fs.mkdir(m("a-dir"));
      assert.equal(await errnoOf(() => fs.open(m("a-dir"), "w")), "EISDIR");
      assert.equal(await errnoOf(() => fs.open(m("a-dir"), "r+")), "EISDIR");
    });

    it("ENOTDIR: mkdir under a file", { timeout: 10_000 }, async () => {
      await fs.writeFile(m("plain-file"), "");
      assert.equal(await errnoOf(() => fs.mkdir(m("plain-file", "sub"))), "ENOTDIR");
      assert.equal(await errnoOf(() => fs.readdir(m("plain-file"))), "ENOTDIR");
    });

    it("EACCES for uid 65534: read a root 0600 file, create in a root 0755 dir", { timeout: 30_000 }, async () => {
      await fs.mkdir(m("root-dir"), { mode: 0o755 });
      await fs.chmod(m("root-dir"), 0o755);
      await fs.writeFile(m("root-dir", "public.txt"), "for all");
      await fs.chmod(m("root-dir", "public.txt"), 0o644);
      await fs.writeFile(m("root-dir", "secret.txt"), "root only");
      await fs.chmod(m("root-dir", "secret.txt"), 0o600);
      // positive control: nobody can reach the mount at all, so the denials below are about modes
      const readable = await runAs(NOBODY, NOBODY, "cat", [m("root-dir", "public.txt")]);
      assert.equal(readable.code, 0, `nobody reads a 0644 file: ${readable.stderr}`);
      assert.equal(readable.stdout, "for all");
      const denied = await runAs(NOBODY, NOBODY, "cat", [m("root-dir", "secret.txt")]);
      assert.notEqual(denied.code, 0, "nobody must not read a root 0600 file");
      assert.match(denied.stderr, /Permission denied/);
      const create = await runAs(NOBODY, NOBODY, "touch", [m("root-dir", "by-nobody")]);
      assert.notEqual(create.code, 0, "nobody must not create in a root 0755 directory");
      assert.match(create.stderr, /Permission denied/);
      assert.equal(await errnoOf(() => fs.stat(d("root-dir", "by-nobody"))), "ENOENT");
    });

    it("new files, directories, FIFOs and symlinks belong to the user who made them", { timeout: 30_000 }, async () => {
      await fs.mkdir(m("shared"), { mode: 0o777 });
      await fs.chmod(m("shared"), 0o777);
      for (const [command, args] of [
        ["touch", [m("shared", "file")]],
        ["mkdir", [m("shared", "dir")]],
        ["mkfifo", [m("shared", "fifo")]],
        ["ln", ["-s", "file", m("shared", "link")]],
      ] as const) {
        const made = await runAs(NOBODY, NOBODY, command, [...args]);
        assert.equal(made.code, 0, `${command} as nobody: ${made.stderr}`);
      }
      for (const name of ["file", "dir", "fifo", "link"]) {
        const onDisk = await fs.lstat(d("shared", name));
        assert.deepEqual([onDisk.uid, onDisk.gid], [NOBODY, NOBODY], `${name} on the server's disk`);
        const seen = await fs.lstat(m("shared", name));
        assert.deepEqual([seen.uid, seen.gid], [NOBODY, NOBODY], `${name} through the mount`);
      }
    });

    it("EXDEV: rename from the mount to another file system", { timeout: 10_000 }, async () => {
      await fs.writeFile(m("cross.txt"), "stays");
      const outside = join(await fs.mkdtemp(join(tmpdir(), "natsfs-posix-xdev-")), "cross.txt");
      assert.equal(await errnoOf(() => fs.rename(m("cross.txt"), outside)), "EXDEV");
      assert.equal(await fs.readFile(d("cross.txt"), "utf8"), "stays");
    });

    it("ENAMETOOLONG: a 256-byte name", { timeout: 10_000 }, async () => {
      const name = "n".repeat(256);
      assert.equal(await errnoOf(() => fs.writeFile(m(name), "x")), "ENAMETOOLONG");
      assert.equal(await errnoOf(() => fs.mkdir(m(name))), "ENAMETOOLONG");
      assert.equal(await errnoOf(() => fs.stat(m(name))), "ENAMETOOLONG");
      // 255 bytes is the longest legal name
      await fs.writeFile(m("n".repeat(255)), "x");
      assert.equal(await fs.readFile(d("n".repeat(255)), "utf8"), "x");
    });

    it("EINVAL: rename a directory into its own subdirectory", { timeout: 10_000 }, async () => {
      await fs.mkdir(m("parent", "child"), { recursive: true });
      assert.equal(await errnoOf(() => fs.rename(m("parent"), m("parent", "child", "parent"))), "EINVAL");
      assert.ok((await fs.stat(d("parent", "child"))).isDirectory());
    });
  });
});

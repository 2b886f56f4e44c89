/**
 * POSIX completeness through a real FUSE mount of a real natsfs server (issue 11): nanosecond times with
 * UTIME_NOW and UTIME_OMIT, fallocate and sparse files, sockets, FIFOs and device nodes, honest write
 * errors (EFBIG at once, deferred errors reported without losing later data), fsync of a directory and
 * the link count of an open unlinked file. One mount of three exports (`--all`): "plain" (the default
 * policy), "devices" (`devices: true`) and "squashed" (`devices: true, squash: root`).
 */
import assert from "node:assert/strict";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { probeMaxFileSize } from "../src/server/file-size-limit.js";
import { mustRun } from "./fixtures/posix-common.js";
import { run, startStack, type Stack } from "./helpers/mount.js";

/** Runs a Python snippet (argv[1:] = `args`) that must succeed; returns its stdout, trimmed. */
async function python(code: string, ...args: string[]): Promise<string> {
  return (await mustRun("python3", ["-c", code, ...args])).trim();
}

/** `stat --format` of a path, trimmed. */
async function statFormat(format: string, path: string): Promise<string> {
  return (await mustRun("stat", ["-c", format, path])).trim();
}

const MiB = 1024 * 1024;

describe("POSIX completeness through the mount", { timeout: 300_000 }, () => {
  let stack: Stack;
  /** Path in the mount, below an export's folder. */
  let m: (exportName: string, ...parts: string[]) => string;
  /** The same path on the server's disk. */
  let d: (exportName: string, ...parts: string[]) => string;

  before(async () => {
    stack = await startStack({
      insecure: false,
      exports: ["plain", "devices", "squashed"],
      exportPolicies: { devices: { devices: true }, squashed: { devices: true, squash: "root" } },
      mountAll: true,
    });
    m = (exportName, ...parts) => join(stack.mountpoint, exportName, ...parts);
    d = (exportName, ...parts) => join(stack.exportDirs[exportName]!, ...parts);
    // The squashed export's root belongs to root: let everyone make entries in it.
    await fs.chmod(d("squashed"), 0o1777);
  }, { timeout: 60_000 });

  after(async () => {
    await stack?.teardown();
  }, { timeout: 60_000 });

  describe("nanosecond times", () => {
    it("touch -d @1.123456789 shows .123456789 through the mount and on disk", async () => {
      await fs.writeFile(m("plain", "ns"), "");
      await mustRun("touch", ["-d", "@1.123456789", m("plain", "ns")]);
      assert.match(await statFormat("%y", m("plain", "ns")), /\.123456789 /);
      assert.equal((await fs.lstat(d("plain", "ns"), { bigint: true })).mtimeNs, 1_123_456_789n);
    });

    it("UTIME_OMIT leaves the other time exactly as it was; UTIME_NOW is the server's now", async () => {
      const file = m("plain", "omit");
      await fs.writeFile(file, "");
      await mustRun("touch", ["-d", "@1500000000.987654321", file]);
      await mustRun("touch", ["-a", "-d", "@2.5", file]); // mtime UTIME_OMIT
      assert.equal(await statFormat("%.9X %.9Y", file), "2.500000000 1500000000.987654321");
      await mustRun("touch", ["-m", "-d", "@3.000000007", file]); // atime UTIME_OMIT
      assert.equal(await statFormat("%.9X %.9Y", file), "2.500000000 3.000000007");
      const before = Date.now();
      await mustRun("touch", [file]); // both UTIME_NOW
      const onDisk = await fs.lstat(d("plain", "omit"));
      for (const time of [onDisk.atimeMs, onDisk.mtimeMs]) assert.ok(Math.abs(time - before) < 5_000, `now: ${time} vs ${before}`);
    });

    it("a symlink gets its own times", async () => {
      await fs.symlink("nowhere", m("plain", "timed-link"));
      await mustRun("touch", ["-h", "-d", "@4.000000044", m("plain", "timed-link")]);
      assert.equal((await fs.lstat(d("plain", "timed-link"), { bigint: true })).mtimeNs, 4_000_000_044n);
    });
  });

  describe("fallocate and sparse files", () => {
    it("mode 0 allocates and grows the file; KEEP_SIZE allocates without growing it", async () => {
      const file = m("plain", "allocated");
      await mustRun("fallocate", ["-l", "1M", file]);
      let stats = await fs.stat(file);
      assert.equal(stats.size, MiB);
      assert.ok(stats.blocks >= 2048, `blocks ${stats.blocks}`);
      assert.equal(stats.blocks, (await fs.stat(d("plain", "allocated"))).blocks);
      await mustRun("fallocate", ["-n", "-l", "2M", file]);
      stats = await fs.stat(file);
      assert.equal(stats.size, MiB, "KEEP_SIZE keeps the size");
      assert.ok(stats.blocks >= 4096, `blocks ${stats.blocks}`);
      assert.deepEqual(await fs.readFile(file), Buffer.alloc(MiB));
    });

    it("PUNCH_HOLE and ZERO_RANGE read back as zeros, and punching frees blocks", async () => {
      const file = m("plain", "punched");
      await fs.writeFile(file, Buffer.alloc(MiB, 0xaa));
      assert.deepEqual(await fs.readFile(file), Buffer.alloc(MiB, 0xaa), "read once, so the client caches it");
      const blocksBefore = (await fs.stat(file)).blocks;
      await mustRun("fallocate", ["-p", "-o", "65536", "-l", "262144", file]);
      await mustRun("fallocate", ["-z", "-o", "0", "-l", "4096", file]);
      const expected = Buffer.alloc(MiB, 0xaa);
      expected.fill(0, 65536, 65536 + 262144);
      expected.fill(0, 0, 4096);
      assert.deepEqual(await fs.readFile(file), expected);
      const stats = await fs.stat(file);
      assert.equal(stats.size, MiB);
      assert.ok(stats.blocks <= blocksBefore - 512, `punching 256 KiB frees its blocks: ${blocksBefore} -> ${stats.blocks}`);
      assert.equal(stats.blocks, (await fs.stat(d("plain", "punched"))).blocks);
    });

    it("a sparse file reads back zeros in its hole, and st_blocks counts only its data; cp --sparse=always keeps holes", async () => {
      const file = m("plain", "sparse");
      await python("import os,sys\nfd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT)\nos.pwrite(fd, b'end', 8*1024*1024)\nos.close(fd)", file);
      const stats = await fs.stat(file);
      assert.equal(stats.size, 8 * MiB + 3);
      assert.ok(stats.blocks <= 64, `a hole takes no blocks: ${stats.blocks}`);
      assert.equal(stats.blocks, (await fs.stat(d("plain", "sparse"))).blocks);
      const content = await fs.readFile(file);
      assert.deepEqual(content.subarray(0, 8 * MiB), Buffer.alloc(8 * MiB));
      assert.equal(content.subarray(8 * MiB).toString(), "end");
      const local = join(stack.root, "sparse-source");
      await python("import os,sys\nfd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT)\nos.pwrite(fd, b'x'*4096, 0)\nos.pwrite(fd, b'y'*4096, 16*1024*1024)\nos.close(fd)", local);
      await mustRun("cp", ["--sparse=always", local, m("plain", "sparse-copy")]);
      await mustRun("cmp", [local, m("plain", "sparse-copy")]);
      const copied = await fs.stat(m("plain", "sparse-copy"));
      assert.ok(copied.blocks <= 64, `the copy keeps the hole: ${copied.blocks} blocks`);
    });

    it("an unsupported mode is EOPNOTSUPP", async () => {
      await fs.writeFile(m("plain", "collapse"), Buffer.alloc(65536));
      const collapse = await run("fallocate", ["-c", "-o", "0", "-l", "4096", m("plain", "collapse")]);
      assert.notEqual(collapse.code, 0);
      assert.match(collapse.stderr, /not supported/i);
    });
  });

  describe("sockets, FIFOs and device nodes", () => {
    const bindSocket = "import socket,sys\nsocket.socket(socket.AF_UNIX).bind(sys.argv[1])";

    it("sockets and FIFOs on every writable export", async () => {
      for (const exportName of ["plain", "squashed"]) {
        await python(bindSocket, m(exportName, "s.sock"));
        await mustRun("mkfifo", [m(exportName, "fifo")]);
        assert.equal(await statFormat("%F", m(exportName, "s.sock")), "socket");
        assert.equal(await statFormat("%F", d(exportName, "s.sock")), "socket");
        assert.equal(await statFormat("%F", d(exportName, "fifo")), "fifo");
      }
    });

    it("device nodes where the policy allows them, with their numbers", async () => {
      await mustRun("mknod", [m("devices", "blk"), "b", "1", "2"]);
      await mustRun("mknod", [m("devices", "chr"), "c", "1", "3"]);
      for (const path of [m("devices", "blk"), d("devices", "blk")]) assert.equal(await statFormat("%F %t %T", path), "block special file 1 2");
      for (const path of [m("devices", "chr"), d("devices", "chr")]) assert.equal(await statFormat("%F %t %T", path), "character special file 1 3");
    });

    it("no device nodes on an export without devices: true, nor for a squashed caller", async () => {
      for (const exportName of ["plain", "squashed"]) {
        const refused = await run("mknod", [m(exportName, "chr"), "c", "1", "3"]);
        assert.notEqual(refused.code, 0, exportName);
        assert.match(refused.stderr, /Operation not permitted/, exportName);
        await assert.rejects(fs.lstat(d(exportName, "chr")), { code: "ENOENT" });
      }
    });

    it("cp -a copies a tree with a socket, a FIFO, a device node and hard links", async () => {
      const tree = join(stack.root, "special-tree");
      await fs.mkdir(tree);
      await python(bindSocket, join(tree, "s.sock"));
      await mustRun("mkfifo", ["-m", "0640", join(tree, "fifo")]);
      await mustRun("mknod", ["-m", "0600", join(tree, "null"), "c", "1", "3"]);
      await fs.writeFile(join(tree, "file"), "linked");
      await fs.link(join(tree, "file"), join(tree, "hard"));
      await mustRun("cp", ["-a", tree, m("devices", "tree")]);
      const describeTree = async (root: string) => {
        const names = (await fs.readdir(root)).sort();
        return Promise.all(names.map(async (name) => `${name} ${await statFormat("%F %a %t %T %h %Y", join(root, name))}`));
      };
      assert.deepEqual(await describeTree(m("devices", "tree")), await describeTree(tree));
      assert.deepEqual(await describeTree(d("devices", "tree")), await describeTree(tree));
    });
  });

  describe("honest write errors", () => {
    it("a write past the export's largest file size fails at once with EFBIG, and a later write keeps its data", async () => {
      const limit = await probeMaxFileSize(d("plain"));
      assert.ok(limit !== undefined && limit < 2 ** 44 + 1, `the test disk's limit: ${limit}`);
      const script = [
        "import os,sys,errno",
        "fd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT|os.O_TRUNC)",
        "try:\n  os.pwrite(fd, b'x', 1<<44)\n  print('written')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])",
        "print(os.pwrite(fd, b'valid', 0))",
        "print(os.pwrite(fd, b'12345678', int(sys.argv[2]) - 4))",
        "os.ftruncate(fd, 5)",
        "os.fsync(fd)",
        "os.close(fd)",
      ].join("\n");
      for (let round = 0; round < 5; round++) {
        const file = m("plain", `efbig-${round}`);
        assert.equal(await python(script, file, String(limit)), "EFBIG\n5\n4", `round ${round}`);
        assert.equal(await fs.readFile(file, "utf8"), "valid");
      }
    });

    describe("on a full file system", () => {
      let small: string;
      before(async () => {
        small = d("plain", "small");
        await fs.mkdir(small);
        await mustRun("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", small]);
      });
      after(async () => {
        await run("umount", ["-l", small]);
      });

      it("a deferred write-behind error is reported by fsync, then by nothing else", async () => {
        const script = [
          "import os,sys,errno",
          "fd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT|os.O_TRUNC)",
          "os.pwrite(fd, b'x'*4096, 0)", // its block stays allocated: later writes there need no room
          "os.fsync(fd)",
          "reports=[]",
          "for i in range(8):\n  try:\n    os.pwrite(fd, b'a'*131072, i*131072)\n  except OSError as e:\n    reports.append(errno.errorcode[e.errno])",
          "try:\n  os.fsync(fd)\nexcept OSError as e:\n  reports.append(errno.errorcode[e.errno])",
          "os.fsync(fd)",
          "os.pwrite(fd, b'hello', 0)",
          "os.fsync(fd)",
          "os.close(fd)",
          "print(sorted(set(reports)))",
        ].join("\n");
        assert.equal(await python(script, m("plain", "small", "full")), "['ENOSPC']");
        assert.equal((await fs.readFile(m("plain", "small", "full"))).subarray(0, 5).toString(), "hello");
      });

      it("the write that reports a deferred error still lands", async () => {
        const script = [
          "import os,sys,errno,time",
          "fd=os.open(sys.argv[1], os.O_WRONLY)",
          "os.pwrite(fd, b'b'*65536, 4*1024*1024)", // no room: fails in write-behind
          "time.sleep(1)",
          "try:\n  os.pwrite(fd, b'world', 0)\n  print('no report')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])",
          "os.close(fd)",
        ].join("\n");
        assert.equal(await python(script, m("plain", "small", "full")), "ENOSPC");
        assert.equal((await fs.readFile(m("plain", "small", "full"))).subarray(0, 5).toString(), "world");
      });
    });
  });

  describe("fsync of a directory and the link count of an open unlinked file", () => {
    it("fsync on a directory succeeds", async () => {
      await fs.mkdir(m("plain", "synced"));
      await fs.writeFile(m("plain", "synced", "entry"), "");
      await python("import os,sys\nfd=os.open(sys.argv[1], os.O_RDONLY|os.O_DIRECTORY)\nos.fsync(fd)\nos.fdatasync(fd)\nos.close(fd)", m("plain", "synced"));
      const handle = await fs.open(m("plain", "synced"), constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });

    it("an open file that was unlinked has a link count of 0 and keeps its data", async () => {
      const file = m("plain", "unlinked");
      const script = [
        "import os,sys",
        "fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT)",
        "os.write(fd, b'still here')",
        "os.unlink(sys.argv[1])",
        "print(os.fstat(fd).st_nlink, os.pread(fd, 10, 0).decode(), os.path.exists(sys.argv[1]))",
        "os.close(fd)",
      ].join("\n");
      assert.equal(await python(script, file), "0 still here False");
      assert.deepEqual((await fs.readdir(m("plain"))).filter((name) => name.startsWith(".fuse_hidden")), [], "nothing left once closed");
    });
  });
});

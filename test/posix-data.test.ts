/**
 * Real data through a real FUSE mount: a ≥ 200 MB tree in and out, a sparse file past 4 GiB,
 * concurrent writers, tar, git, a FIFO and `cp -a`, all compared byte for byte (sha256) with the
 * source and with the exported directory on the server's disk.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { assertSameMs, hashTree, mustRun, sha256File, walkTree, type TreeEntry } from "./fixtures/posix-common.js";
import { run, startStack, type Stack } from "./helpers/mount.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TREE_MIB = Number(process.env.NATSFS_TEST_TREE_MB ?? "200");

/** Writes `size` random bytes to `path` without holding them all in memory. */
function writeRandomFile(path: string, size: number): void {
  const fd = openSync(path, "w");
  try {
    const chunk = Buffer.alloc(Math.min(size, 8 * MiB));
    for (let written = 0; written < size; ) {
      const length = Math.min(chunk.length, size - written);
      randomFillSync(chunk, 0, length);
      written += writeSync(fd, chunk, 0, length);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * File sizes for a tree of at least `targetMiB`: a fixed mix of tiny to medium files, then 50 MiB,
 * 8 MiB and 1 MiB files until the target is reached.
 */
function treeFileSizes(targetMiB: number): number[] {
  const sizes = [
    ...Array<number>(3).fill(0),
    ...Array<number>(3).fill(1),
    ...Array<number>(20).fill(4 * KiB),
    ...Array<number>(20).fill(100 * KiB),
    ...Array<number>(8).fill(1 * MiB),
    ...Array<number>(3).fill(8 * MiB),
  ];
  let remaining = targetMiB * MiB - sizes.reduce((a, b) => a + b, 0);
  for (const size of [50 * MiB, 8 * MiB, 1 * MiB]) {
    while (remaining >= size) {
      sizes.push(size);
      remaining -= size;
    }
  }
  if (remaining > 0) sizes.push(1 * MiB);
  return sizes;
}

describe("real data through the mount", { timeout: 600_000 }, () => {
  let stack: Stack;
  let scratch: string;
  let m: (...parts: string[]) => string;
  let d: (...parts: string[]) => string;

  before(async () => {
    scratch = await fs.mkdtemp(join(tmpdir(), "natsfs-posix-data-"));
    stack = await startStack({ insecure: true });
    m = (...parts) => join(stack.mountpoint, ...parts);
    d = (...parts) => join(stack.exportDir, ...parts);
  }, { timeout: 60_000 });

  after(async () => {
    await stack?.teardown();
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  }, { timeout: 60_000 });

  it(`copies a ${TREE_MIB} MiB tree of mixed file sizes in and out unchanged`, { timeout: 420_000 }, async () => {
    const source = join(scratch, "tree");
    const sizes = treeFileSizes(TREE_MIB);
    for (const [index, size] of sizes.entries()) {
      const dir = join(source, `d${index % 4}`, `sub${index % 3}`, ...(index % 5 === 0 ? ["deep", "deeper"] : []));
      await fs.mkdir(dir, { recursive: true });
      writeRandomFile(join(dir, `f${index}-${size}.bin`), size);
    }
    await fs.mkdir(join(source, "empty-dir"));
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(total >= TREE_MIB * MiB);

    await mustRun("cp", ["-r", source, m("tree")], { timeoutMs: 300_000 });
    const back = join(scratch, "back");
    await mustRun("cp", ["-r", m("tree"), back], { timeoutMs: 300_000 });

    const shape = (entries: TreeEntry[]) => entries.map(({ path, kind, size }) => ({ path, kind, size }));
    assert.deepEqual(shape(await walkTree(m("tree"))), shape(await walkTree(source)), "listing through the mount");
    const expected = await hashTree(source);
    assert.equal(expected.size, sizes.length);
    assert.deepEqual(await hashTree(d("tree")), expected, "export directory on disk");
    assert.deepEqual(await hashTree(back), expected, "copied back out of the mount");
  });

  it("a sparse file with data at 5 GiB reads zeros before it and exact data at it", { timeout: 120_000 }, async () => {
    const offset = 5 * GiB;
    const payload = randomFillSync(Buffer.alloc(1 * MiB + 123));
    const file = await fs.open(m("sparse.bin"), "w+");
    try {
      const { bytesWritten } = await file.write(payload, 0, payload.length, offset);
      assert.equal(bytesWritten, payload.length);
      await file.sync();
    } finally {
      await file.close();
    }
    const size = offset + payload.length;
    assert.equal((await fs.stat(m("sparse.bin"))).size, size);
    assert.equal((await fs.stat(d("sparse.bin"))).size, size);

    for (const path of [m("sparse.bin"), d("sparse.bin")]) {
      const reader = await fs.open(path, "r");
      try {
        const atOffset = Buffer.alloc(payload.length);
        assert.equal((await reader.read(atOffset, 0, atOffset.length, offset)).bytesRead, payload.length);
        assert.ok(atOffset.equals(payload), `${path}: data at 5 GiB`);
        for (const zerosAt of [0, 1 * GiB + 777, offset / 2, offset - 1 * MiB]) {
          const zeros = Buffer.alloc(1 * MiB, 0xaa);
          assert.equal((await reader.read(zeros, 0, zeros.length, zerosAt)).bytesRead, zeros.length);
          assert.ok(zeros.equals(Buffer.alloc(1 * MiB)), `${path}: zeros at ${zerosAt}`);
        }
        const tail = Buffer.alloc(10);
        assert.equal((await reader.read(tail, 0, 10, size)).bytesRead, 0, `${path}: nothing past the end`);
      } finally {
        await reader.close();
      }
    }
    // the hole must stay a hole on the server's disk, not 5 GiB of written zeros
    assert.ok((await fs.stat(d("sparse.bin"))).blocks * 512 < 64 * MiB, "sparse on disk");
    await fs.unlink(m("sparse.bin"));
  });

  it("four processes write different 20 MiB files at once", { timeout: 120_000 }, async () => {
    const writers = [0, 1, 2, 3];
    for (const i of writers) writeRandomFile(join(scratch, `concurrent-${i}`), 20 * MiB);
    await fs.mkdir(m("concurrent"));
    const results = await Promise.all(writers.map((i) =>
      run("dd", [`if=${join(scratch, `concurrent-${i}`)}`, `of=${m("concurrent", `file-${i}`)}`, "bs=256K", "conv=fsync"], { timeoutMs: 100_000 })));
    for (const [i, result] of results.entries()) assert.equal(result.code, 0, `writer ${i}: ${result.stderr}`);
    for (const i of writers) {
      const expected = await sha256File(join(scratch, `concurrent-${i}`));
      assert.equal(await sha256File(m("concurrent", `file-${i}`)), expected, `file-${i} through the mount`);
      assert.equal(await sha256File(d("concurrent", `file-${i}`)), expected, `file-${i} on disk`);
    }
  });

  it("tar -x a real source tree into the mount and tar -c it out unchanged", { timeout: 120_000 }, async () => {
    const original = join(process.cwd(), "node_modules", "nats");
    const inTar = join(scratch, "in.tar");
    await mustRun("tar", ["-cf", inTar, "-C", join(original, ".."), "nats"]);
    await fs.mkdir(m("tarx"));
    await mustRun("tar", ["-xpf", inTar, "-C", m("tarx")], { timeoutMs: 100_000 });
    const outTar = join(scratch, "out.tar");
    await mustRun("tar", ["-cf", outTar, "-C", m("tarx"), "nats"], { timeoutMs: 100_000 });

    const listing = async (tarball: string) =>
      (await mustRun("tar", ["-tvf", tarball, "--full-time", "--numeric-owner"])).trim().split("\n").sort();
    const inListing = await listing(inTar);
    assert.ok(inListing.length > 50, "a real tree");
    assert.deepEqual(await listing(outTar), inListing);

    const unpacked = join(scratch, "unpacked");
    await fs.mkdir(unpacked);
    await mustRun("tar", ["-xpf", outTar, "-C", unpacked]);
    const expected = await hashTree(original);
    assert.deepEqual(await hashTree(join(unpacked, "nats")), expected, "contents out of the mount");
    assert.deepEqual(await hashTree(d("tarx", "nats")), expected, "contents on disk");
  });

  it("git init, add, commit and a clean status inside the mount", { timeout: 120_000 }, async () => {
    const repo = m("repo");
    await fs.mkdir(join(repo, "src", "lib"), { recursive: true });
    await fs.writeFile(join(repo, "README.md"), "# natsfs test repo\n");
    await fs.writeFile(join(repo, "src", "lib", "a.ts"), "export const a = 1;\n");
    await fs.writeFile(join(repo, "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
    await fs.cp(join(process.cwd(), "node_modules", "nats", "lib"), join(repo, "vendor"), { recursive: true });
    const git = (...args: string[]) =>
      mustRun("git", ["-c", "user.name=natsfs test", "-c", "user.email=test@natsfs.invalid", "-c", "init.defaultBranch=main", ...args],
        { cwd: repo, timeoutMs: 100_000 });
    await git("init", "-q");
    await git("add", ".");
    await git("commit", "-q", "-m", "first commit");
    assert.equal(await git("status", "--porcelain"), "");
    await fs.appendFile(join(repo, "README.md"), "more\n");
    assert.equal((await git("status", "--porcelain")).trim(), "M README.md");
    await git("commit", "-q", "-am", "second commit");
    assert.equal(await git("status", "--porcelain"), "");
    assert.deepEqual((await git("log", "--format=%s")).trim().split("\n"), ["second commit", "first commit"]);
    await git("fsck", "--full", "--strict");
    assert.equal((await git("ls-files", "-s", "run.sh")).split(" ")[0], "100755");
  });

  it("a FIFO in the mount passes a line from a shell writer to a shell reader", { timeout: 30_000 }, async () => {
    const fifo = m("pipe");
    await mustRun("mkfifo", [fifo]);
    const line = "hello through a fifo on natsfs";
    const reader = run("sh", ["-c", 'read -r line < "$1" && printf "%s" "$line"', "sh", fifo], { timeoutMs: 20_000 });
    const writer = run("sh", ["-c", 'printf "%s\\n" "$2" > "$1"', "sh", fifo, line], { timeoutMs: 20_000 });
    const [read, wrote] = await Promise.all([reader, writer]);
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, line);
  });

  it("cp -a preserves modes, mtimes, symlinks and owners", { timeout: 60_000 }, async () => {
    const source = join(scratch, "cpa");
    await fs.mkdir(join(source, "sub"), { recursive: true });
    await fs.writeFile(join(source, "private.txt"), "private");
    await fs.chmod(join(source, "private.txt"), 0o600);
    await fs.writeFile(join(source, "shared.txt"), "shared");
    await fs.chmod(join(source, "shared.txt"), 0o644);
    await fs.writeFile(join(source, "tool.sh"), "#!/bin/sh\n");
    await fs.chmod(join(source, "tool.sh"), 0o755);
    await fs.writeFile(join(source, "sub", "owned.txt"), "owned");
    await fs.chown(join(source, "sub", "owned.txt"), 1234, 1234);
    await fs.symlink("../shared.txt", join(source, "sub", "rel-link"));
    await fs.symlink("/etc/hostname", join(source, "abs-link"));
    await fs.chmod(join(source, "sub"), 0o750);
    let stamp = 1_400_000_000_000;
    for (const file of ["private.txt", "shared.txt", "tool.sh", "sub/owned.txt", "sub", ""]) {
      stamp += 86_400_123;
      await fs.utimes(join(source, file), new Date(stamp), new Date(stamp));
    }

    await mustRun("cp", ["-a", source, m("cpa")]);
    // symlinks: name and target; everything else: kind, size, mode, and mtime to the millisecond
    const comparable = (entries: TreeEntry[]) =>
      entries.map(({ mtimeMs: _mtime, ...e }) => (e.kind === "symlink" ? { path: e.path, kind: e.kind, target: e.target } : e));
    const expected = await walkTree(source);
    for (const [where, copy] of [["through the mount", await walkTree(m("cpa"))], ["on disk", await walkTree(d("cpa"))]] as const) {
      assert.deepEqual(comparable(copy), comparable(expected), where);
      for (const [i, entry] of copy.entries()) {
        if (entry.kind !== "symlink") assertSameMs(entry.mtimeMs, expected[i]!.mtimeMs, `${where}: mtime of ${entry.path}`);
      }
    }
    assertSameMs((await fs.stat(m("cpa"))).mtimeMs, (await fs.stat(source)).mtimeMs, "mtime of the copied directory itself");
    const owned = await fs.stat(m("cpa", "sub", "owned.txt"));
    assert.deepEqual([owned.uid, owned.gid], [1234, 1234]);
  });
});

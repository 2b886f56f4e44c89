/**
 * The project's patch to fuse-native 2.2.6 (patches/fuse-native+2.2.6.patch, applied and rebuilt from source
 * by the postinstall script): utimens receives the real mtime, UTIME_NOW as the current time and UTIME_OMIT
 * as -1, and every handler receives the calling process as `caller` after its callback.
 *
 * A tiny in-memory file system is mounted straight through fuse-native, without natsfs. Everything that
 * touches the mount runs asynchronously or in a child process: this process serves the mount, so a
 * synchronous call into it would deadlock.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

const { S_IFMT, S_IFREG, S_IFIFO } = constants;
const NOBODY = 65534;
const COMMAND_TIMEOUT_MS = 10_000;
/** Slack for comparing kernel "now" with this process's clock, both rounded to milliseconds. */
const CLOCK_SLACK_MS = 2_000;

interface Caller {
  uid: number;
  gid: number;
  pid: number;
}
type Done = (errno: number, ...results: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseClass {
  new (mountpoint: string, ops: object, options: object): FuseInstance;
  ENOENT: number;
  EEXIST: number;
  UTIMENS_OMIT: number;
}
const Fuse = require("fuse-native") as FuseClass;

interface Node {
  mode: number;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
  target?: string;
}

interface Recorded {
  utimens: { path: string; atime: number; mtime: number; caller: Caller }[];
  create: { path: string; mode: number; caller: Caller }[];
  mknod: { path: string; mode: number; caller: Caller }[];
  mkdir: { path: string; mode: number; caller: Caller }[];
  symlink: { target: string; path: string; caller: Caller }[];
}

/** An in-memory tree whose new nodes are owned by the caller, recording the arguments handlers receive. */
function recordingFileSystem(nodes: Map<string, Node>, recorded: Recorded) {
  const add = (path: string, mode: number, caller: Caller, target?: string) => {
    const now = Date.now();
    nodes.set(path, { mode, uid: caller.uid, gid: caller.gid, atime: now, mtime: now, target });
  };
  const stat = (node: Node) => ({
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    size: node.target?.length ?? 0,
    atime: node.atime,
    mtime: node.mtime,
    ctime: node.mtime,
    nlink: 1,
  });
  return {
    getattr(path: string, cb: Done) {
      const node = nodes.get(path);
      if (!node) return cb(Fuse.ENOENT);
      cb(0, stat(node));
    },
    readdir(path: string, cb: Done) {
      const prefix = path === "/" ? "/" : `${path}/`;
      const names = [...nodes.keys()]
        .filter((p) => p !== path && p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
        .map((p) => p.slice(prefix.length));
      cb(0, names);
    },
    open(path: string, _flags: number, cb: Done) {
      cb(nodes.has(path) ? 0 : Fuse.ENOENT, 0);
    },
    release(_path: string, _fd: number, cb: Done) {
      cb(0);
    },
    readlink(path: string, cb: Done) {
      const target = nodes.get(path)?.target;
      if (target === undefined) return cb(Fuse.ENOENT);
      cb(0, target);
    },
    create(path: string, mode: number, cb: Done, caller: Caller) {
      recorded.create.push({ path, mode, caller });
      add(path, mode, caller);
      cb(0, 0);
    },
    mknod(path: string, mode: number, _dev: number, cb: Done, caller: Caller) {
      recorded.mknod.push({ path, mode, caller });
      add(path, mode, caller);
      cb(0);
    },
    mkdir(path: string, mode: number, cb: Done, caller: Caller) {
      recorded.mkdir.push({ path, mode, caller });
      if (nodes.has(path)) return cb(Fuse.EEXIST);
      add(path, 0o040000 | mode, caller);
      cb(0);
    },
    symlink(target: string, path: string, cb: Done, caller: Caller) {
      recorded.symlink.push({ target, path, caller });
      add(path, 0o120777, caller, target);
      cb(0);
    },
    utimens(path: string, atime: number, mtime: number, cb: Done, caller: Caller) {
      recorded.utimens.push({ path, atime, mtime, caller });
      const node = nodes.get(path);
      if (!node) return cb(Fuse.ENOENT);
      if (atime !== Fuse.UTIMENS_OMIT) node.atime = atime;
      if (mtime !== Fuse.UTIMENS_OMIT) node.mtime = mtime;
      cb(0);
    },
  };
}

function withTimeout<T>(what: string, ms: number, start: (cb: (err: Error | null, value?: T) => void) => void) {
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    start((err, value) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    });
  });
}

function asNobody(command: string, ...args: string[]) {
  return run("setpriv", ["--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", command, ...args], {
    timeout: COMMAND_TIMEOUT_MS,
  });
}

describe("patched fuse-native: utimens times and caller context", { timeout: 60_000 }, () => {
  let workDir: string;
  let mountpoint: string;
  let fuse: FuseInstance;
  const nodes = new Map<string, Node>();
  const recorded: Recorded = { utimens: [], create: [], mknod: [], mkdir: [], symlink: [] };
  const lastUtimens = (path: string) => recorded.utimens.filter((call) => call.path === path).at(-1);

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "fuse-native-patch-"));
    // Other users must reach the mountpoint for the setpriv cases.
    await chmod(workDir, 0o755);
    mountpoint = join(workDir, "mnt");
    await mkdir(mountpoint);
    const now = Date.now();
    nodes.set("/", { mode: 0o040777, uid: 0, gid: 0, atime: now, mtime: now });
    fuse = new Fuse(mountpoint, recordingFileSystem(nodes, recorded), { allowOther: true, timeout: 5_000 });
    await withTimeout("mount", 10_000, (cb) => fuse.mount(cb));
  });

  after(async () => {
    try {
      // Runs fusermount -uz, then releases the native side.
      await withTimeout("unmount", 10_000, (cb) => fuse?.unmount(cb));
    } catch {
      await run("fusermount", ["-uz", mountpoint], { timeout: COMMAND_TIMEOUT_MS }).catch(() => undefined);
    }
    await rm(workDir, { recursive: true, force: true });
  });

  it("passes distinct atime and mtime from utimes()", async () => {
    const file = join(mountpoint, "times.txt");
    await writeFile(file, "");
    // Fractions exact in binary: Node hands utimes() seconds as a double.
    const atime = new Date(1_500_000_000_250);
    const mtime = new Date(1_600_000_000_500);
    await utimes(file, atime, mtime);
    const call = lastUtimens("/times.txt");
    assert.ok(call, "utimens was called");
    assert.equal(call.atime, atime.getTime());
    assert.equal(call.mtime, mtime.getTime());
    assert.equal(call.caller.uid, 0);
  });

  it("passes -1 for the time that touch -m leaves alone", async () => {
    const file = join(mountpoint, "mtime-only.txt");
    await writeFile(file, "");
    await run("touch", ["-m", "-d", "@1000000", file], { timeout: COMMAND_TIMEOUT_MS });
    const call = lastUtimens("/mtime-only.txt");
    assert.ok(call, "utimens was called");
    assert.equal(call.atime, Fuse.UTIMENS_OMIT);
    assert.equal(call.mtime, 1_000_000_000);
  });

  it("passes the current time for both when touch sets now", async () => {
    const file = join(mountpoint, "now.txt");
    await writeFile(file, "");
    await utimes(file, new Date(0), new Date(0));
    const before = Date.now();
    await run("touch", [file], { timeout: COMMAND_TIMEOUT_MS });
    const after = Date.now();
    const call = lastUtimens("/now.txt");
    assert.ok(call, "utimens was called");
    for (const time of [call.atime, call.mtime]) {
      assert.ok(time >= before - CLOCK_SLACK_MS && time <= after + CLOCK_SLACK_MS, `${time} is not now (${before}..${after})`);
    }
  });

  it("tells create, mkdir, mknod and symlink which user is calling", async () => {
    const { stdout } = await asNobody("sh", "-c", 'echo $$; exec touch "$1"', "sh", join(mountpoint, "nobody.txt"));
    const touchPid = Number(stdout.trim());
    await asNobody("mkdir", join(mountpoint, "nobody-dir"));
    await asNobody("mkfifo", join(mountpoint, "nobody-fifo"));
    await asNobody("ln", "-s", "nobody.txt", join(mountpoint, "nobody-link"));

    const created = recorded.create.find((call) => call.path === "/nobody.txt");
    const madeDir = recorded.mkdir.find((call) => call.path === "/nobody-dir");
    const madeFifo = recorded.mknod.find((call) => call.path === "/nobody-fifo");
    const linked = recorded.symlink.find((call) => call.path === "/nobody-link");
    assert.ok(created && madeDir && madeFifo && linked, "every creating handler was called");
    for (const { caller } of [created, madeDir, madeFifo, linked]) {
      assert.equal(caller.uid, NOBODY);
      assert.equal(caller.gid, NOBODY);
      assert.ok(caller.pid > 0);
    }
    // `exec` keeps the shell's pid, so the kernel reports the touch process itself.
    assert.equal(created.caller.pid, touchPid);
    assert.equal(linked.target, "nobody.txt");
    assert.equal(created.mode & S_IFMT, S_IFREG);
    assert.equal(madeFifo.mode & S_IFMT, S_IFIFO);
  });
});

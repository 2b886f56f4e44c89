/**
 * The project's patch to fuse-native 2.2.6 (patches/fuse-native+2.2.6.patch, applied and rebuilt from source
 * by the postinstall script): every handler receives the calling process as `caller` after its callback;
 * utimens receives nanosecond times with UTIME_NOW and UTIME_OMIT kept; getattr answers carry nanoseconds;
 * the lock, flock and fallocate operations exist; a kernel interrupt of a waiting request reaches JS; names
 * can travel as bytes (namesAsBuffers).
 *
 * A tiny in-memory file system is mounted straight through fuse-native, without natsfs, and driven by child
 * processes (python3, coreutils, util-linux): this process serves the mount, so a synchronous call into it
 * would deadlock.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { constants } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import Fuse, { type Caller, type FileLock, type StatTime, type Timespec } from "fuse-native";
import { start, waitFor, type Started } from "./helpers/processes.js";

const run = promisify(execFile);

const { S_IFMT, S_IFREG, S_IFIFO } = constants;
const NOBODY = 65534;
const COMMAND_TIMEOUT_MS = 10_000;
/** How long a kernel interrupt may take to reach a handler (the native side polls for it every 0.1 s). */
const INTERRUPT_REACHES_JS_MS = 2_000;

type Done = (errno: number, ...results: unknown[]) => void;

interface Node {
  mode: number;
  uid: number;
  gid: number;
  atime: StatTime;
  mtime: StatTime;
  nlink?: number;
  ino: number | bigint;
  size?: number;
  target?: string;
}

interface LockCall {
  path: string;
  fd: number;
  cmd: number;
  lock: FileLock;
  owner: bigint;
  caller: Caller;
}
interface FlockCall {
  path: string;
  fd: number;
  op: number;
  owner: bigint;
}
/** A lock request the test answers itself (see `holdLocks`). */
interface HeldLock extends LockCall {
  answer: (errno: number) => void;
}

interface Recorded {
  utimens: { path: string; atime: Timespec; mtime: Timespec; caller: Caller }[];
  create: { path: string; mode: number; caller: Caller }[];
  mknod: { path: string; mode: number; caller: Caller }[];
  mkdir: { path: string; mode: number; caller: Caller }[];
  symlink: { target: string; path: string; caller: Caller }[];
  lock: LockCall[];
  flock: FlockCall[];
  fallocate: { path: string; mode: number; offset: number; length: number; fd: number }[];
  unlink: string[];
  rename: { from: string; to: string }[];
}

/** How the test file system answers lock requests; set per test. */
interface LockPolicy {
  /** F_GETLK answers by path (default: the range is free). */
  conflicts: Map<string, FileLock>;
  /** F_SETLKW requests on these paths are handed to the listener instead of being granted. */
  holders: Map<string, (held: HeldLock) => void>;
}

/** First handle number the test file system gives out, so handlers can be checked for receiving it. */
const FIRST_FD = 40;

/** An in-memory tree whose new nodes are owned by the caller, recording the arguments handlers receive. */
function recordingFileSystem(nodes: Map<string, Node>, recorded: Recorded, policy: LockPolicy) {
  let nextFd = FIRST_FD;
  let nextIno = 2;

  const add = (path: string, mode: number, caller: Caller, target?: string) => {
    const now = Date.now();
    nodes.set(path, { mode, uid: caller.uid, gid: caller.gid, atime: now, mtime: now, target, ino: nextIno++ });
  };
  const stat = (node: Node) => ({
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    size: node.size ?? node.target?.length ?? 0,
    atime: node.atime,
    mtime: node.mtime,
    ctime: node.mtime,
    nlink: node.nlink ?? 1,
    ino: node.ino,
  });
  return {
    getattr(path: string, cb: Done) {
      const node = nodes.get(path);
      if (!node) return cb(Fuse.ENOENT);
      cb(0, stat(node));
    },
    fgetattr(path: string, _fd: number, cb: Done) {
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
      cb(nodes.has(path) ? 0 : Fuse.ENOENT, nextFd++);
    },
    release(_path: string, _fd: number, cb: Done) {
      cb(0);
    },
    unlink(path: string, cb: Done) {
      recorded.unlink.push(path);
      cb(nodes.delete(path) ? 0 : Fuse.ENOENT);
    },
    rename(from: string, to: string, cb: Done) {
      const node = nodes.get(from);
      if (!node) return cb(Fuse.ENOENT);
      recorded.rename.push({ from, to });
      nodes.delete(from);
      nodes.set(to, node);
      cb(0);
    },
    truncate(_path: string, _size: number, cb: Done) {
      cb(0);
    },
    write(_path: string, _fd: number, _buffer: Buffer, length: number, _offset: number, cb: Done) {
      cb(length);
    },
    read(_path: string, _fd: number, _buffer: Buffer, _length: number, _offset: number, cb: Done) {
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
      cb(0, nextFd++);
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
    utimens(path: string, atime: Timespec, mtime: Timespec, cb: Done, caller: Caller) {
      recorded.utimens.push({ path, atime, mtime, caller });
      const node = nodes.get(path);
      if (!node) return cb(Fuse.ENOENT);
      const resolve = (time: Timespec, current: StatTime) =>
        time.nsec === Fuse.UTIME_OMIT ? current : time.nsec === Fuse.UTIME_NOW ? Date.now() : time;
      node.atime = resolve(atime, node.atime);
      node.mtime = resolve(mtime, node.mtime);
      cb(0);
    },
    lock(path: string, fd: number, cmd: number, lock: FileLock, owner: bigint, cb: Done, caller: Caller) {
      const call = { path, fd, cmd, lock, owner, caller };
      recorded.lock.push(call);
      const holder = policy.holders.get(path);
      if (cmd === Fuse.F_SETLKW && holder) return holder({ ...call, answer: (errno) => cb(errno) });
      if (cmd === Fuse.F_GETLK) return cb(0, policy.conflicts.get(path));
      cb(0);
    },
    flock(path: string, fd: number, op: number, owner: bigint, cb: Done) {
      recorded.flock.push({ path, fd, op, owner });
      cb(0);
    },
    fallocate(path: string, mode: number, offset: number, length: number, fd: number, cb: Done) {
      recorded.fallocate.push({ path, mode, offset, length, fd });
      cb(0);
    },
  };
}

function withTimeout<T>(what: string, ms: number, begin: (cb: (err: Error | null, value?: T) => void) => void) {
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    begin((err, value) => {
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

/** The python3 binary itself: a version manager's shim (pyenv) can take seconds to start on a busy machine. */
let pythonBinary: string | undefined;
async function pythonExecutable(): Promise<string> {
  pythonBinary ??= (await run("python3", ["-c", "import sys; print(sys.executable)"], { timeout: COMMAND_TIMEOUT_MS })).stdout.trim();
  return pythonBinary;
}

/** Runs a python3 snippet (argv[1:] = args) to completion; resolves with its stdout. */
async function python(code: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(await pythonExecutable(), ["-c", code, ...args], { timeout: COMMAND_TIMEOUT_MS });
  return stdout.trim();
}

/** Starts a python3 snippet in the background. */
async function startPython(code: string, ...args: string[]): Promise<Started> {
  return start(await pythonExecutable(), ["-c", code, ...args]);
}

/** Opens argv[1] and blocks in lockf(F_SETLKW) on it; prints "locked" or the error. SIGUSR1 raises in it. */
const BLOCKING_LOCKF = `
import fcntl, os, signal, sys
def interrupted(signum, frame):
    raise InterruptedError("SIGUSR1")
signal.signal(signal.SIGUSR1, interrupted)
fd = os.open(sys.argv[1], os.O_RDWR)
print("waiting", flush=True)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
except OSError as err:
    print("failed", type(err).__name__, err.errno, flush=True)
`;

/** A mounted test file system under its own temporary folder; always unmounted by `close`. */
interface TestMount {
  mountpoint: string;
  fuse: Fuse;
  nodes: Map<string, Node>;
  recorded: Recorded;
  policy: LockPolicy;
  close(): Promise<void>;
}

/** Mounts `ops` on a mountpoint in a new temporary folder; `close` unmounts and removes it. */
async function mountFileSystem(ops: object, options: Record<string, unknown>) {
  const workDir = await mkdtemp(join(tmpdir(), "fuse-native-patch-"));
  // Other users must reach the mountpoint for the setpriv cases.
  await chmod(workDir, 0o755);
  const mountpoint = join(workDir, "mnt");
  await mkdir(mountpoint);
  const fuse = new Fuse(mountpoint, ops as never, { allowOther: true, ...options });
  const close = async () => {
    try {
      // Runs fusermount -uz, then releases the native side.
      await withTimeout("unmount", 10_000, (cb) => fuse.unmount(cb));
    } catch {
      await run("fusermount", ["-uz", mountpoint], { timeout: COMMAND_TIMEOUT_MS }).catch(() => undefined);
    }
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    await withTimeout("mount", 10_000, (cb) => fuse.mount(cb));
  } catch (err) {
    await close();
    throw err;
  }
  return { mountpoint, fuse, close };
}

async function mountTestFileSystem(): Promise<TestMount> {
  const now = Date.now();
  const nodes = new Map<string, Node>([["/", { mode: 0o040777, uid: 0, gid: 0, atime: now, mtime: now, ino: 1 }]]);
  const recorded: Recorded = {
    utimens: [],
    create: [],
    mknod: [],
    mkdir: [],
    symlink: [],
    lock: [],
    flock: [],
    fallocate: [],
    unlink: [],
    rename: [],
  };
  const policy: LockPolicy = { conflicts: new Map(), holders: new Map() };
  const mounted = await mountFileSystem(recordingFileSystem(nodes, recorded, policy), {
    // Lock waits are the tests' to end.
    timeout: { default: 5_000, lock: false, flock: false },
    // The package has no key for use_ino (the kernel shows our inode numbers); it rides in fsname's value.
    fsname: "fuse-native-patch,use_ino",
  });
  return { ...mounted, nodes, recorded, policy };
}

/** One flat directory whose names and link targets are bytes (kept as latin1 strings: one char a byte). */
function byteNamedFileSystem(paths: Buffer[]) {
  const entries = new Map<string, { mode: number; target?: Buffer }>();
  const key = (path: Buffer) => {
    paths.push(path);
    return path.toString("latin1");
  };
  const now = Date.now();
  const stat = (mode: number, size: number) => ({ mode, uid: 0, gid: 0, size, atime: now, mtime: now, ctime: now });
  return {
    getattr(path: Buffer, cb: Done) {
      if (key(path) === "/") return cb(0, stat(constants.S_IFDIR | 0o755, 0));
      const entry = entries.get(key(path));
      if (!entry) return cb(Fuse.ENOENT);
      cb(0, stat(entry.mode, entry.target?.length ?? 0));
    },
    readdir(_path: Buffer, cb: Done) {
      cb(0, [...entries.keys()].map((name) => Buffer.from(name.slice(1), "latin1")));
    },
    create(path: Buffer, mode: number, cb: Done) {
      entries.set(key(path), { mode });
      cb(0, FIRST_FD);
    },
    open(path: Buffer, _flags: number, cb: Done) {
      cb(entries.has(key(path)) ? 0 : Fuse.ENOENT, FIRST_FD);
    },
    release(_path: Buffer, _fd: number, cb: Done) {
      cb(0);
    },
    symlink(target: Buffer, path: Buffer, cb: Done) {
      entries.set(key(path), { mode: constants.S_IFLNK | 0o777, target });
      cb(0);
    },
    readlink(path: Buffer, cb: Done) {
      const target = entries.get(key(path))?.target;
      if (!target) return cb(Fuse.ENOENT);
      cb(0, target);
    },
  };
}

/** Resolves with the next F_SETLKW request on `path`, which the test then answers. */
function nextHeldLock(policy: LockPolicy, path: string): Promise<HeldLock> {
  return new Promise((resolve) => {
    policy.holders.set(path, (held) => {
      policy.holders.delete(path);
      resolve(held);
    });
  });
}

function isMounted(mountpoint: string): Promise<boolean> {
  return readFile("/proc/mounts", "utf8").then((mounts) => mounts.split("\n").some((line) => line.split(" ")[1] === mountpoint));
}

async function exitOf(started: Started, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const { child } = started;
  if (child.exitCode === null && child.signalCode === null) {
    await withTimeout(`exit of pid ${started.pid}`, timeoutMs, (cb) => {
      once(child, "exit").then(() => cb(null), cb);
    });
  }
  return { code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null };
}

describe("patched fuse-native: times, caller, locks and fallocate", { timeout: 90_000 }, () => {
  let mount: TestMount;
  let mountpoint: string;
  const children: Started[] = [];
  const path = (name: string) => join(mountpoint, name);
  const lastUtimens = (name: string) => mount.recorded.utimens.filter((call) => call.path === `/${name}`).at(-1);
  const locksOn = (name: string) => mount.recorded.lock.filter((call) => call.path === `/${name}`);
  const flocksOn = (name: string) => mount.recorded.flock.filter((call) => call.path === `/${name}`);
  const startChild = async (code: string, ...args: string[]) => {
    const child = await startPython(code, ...args);
    children.push(child);
    return child;
  };

  before(async () => {
    mount = await mountTestFileSystem();
    mountpoint = mount.mountpoint;
  });

  after(async () => {
    // A child still blocked on the mount would hold it: end them first (the handlers answer interrupts).
    await Promise.all(children.map((child) => child.stop("SIGKILL")));
    await mount?.close();
  });

  it("passes utimens times to the nanosecond, and getattr answers them back", async () => {
    const file = path("times.txt");
    await writeFile(file, "");
    await python("import os,sys; os.utime(sys.argv[1], ns=(1500000000123456789, 1600000000987654321))", file);
    const call = lastUtimens("times.txt");
    assert.ok(call, "utimens was called");
    assert.deepEqual(call.atime, { sec: 1_500_000_000, nsec: 123_456_789 });
    assert.deepEqual(call.mtime, { sec: 1_600_000_000, nsec: 987_654_321 });
    assert.equal(call.caller.uid, 0);
    const shown = await python("import os,sys; s=os.stat(sys.argv[1]); print(s.st_atime_ns, s.st_mtime_ns)", file);
    assert.equal(shown, "1500000000123456789 1600000000987654321");
  });

  it("passes UTIME_OMIT for the time that touch -m leaves alone", async () => {
    const file = path("mtime-only.txt");
    await writeFile(file, "");
    await run("touch", ["-m", "-d", "@1000000.5", file], { timeout: COMMAND_TIMEOUT_MS });
    const call = lastUtimens("mtime-only.txt");
    assert.ok(call, "utimens was called");
    assert.equal(call.atime.nsec, Fuse.UTIME_OMIT);
    assert.deepEqual(call.mtime, { sec: 1_000_000, nsec: 500_000_000 });
  });

  it("passes UTIME_NOW for both times when touch sets now", async () => {
    const file = path("now.txt");
    await writeFile(file, "");
    await run("touch", ["-d", "@0", file], { timeout: COMMAND_TIMEOUT_MS });
    await run("touch", [file], { timeout: COMMAND_TIMEOUT_MS });
    const call = lastUtimens("now.txt");
    assert.ok(call, "utimens was called");
    assert.equal(call.atime.nsec, Fuse.UTIME_NOW);
    assert.equal(call.mtime.nsec, Fuse.UTIME_NOW);
  });

  it("accepts getattr times as { sec, nsec }, bigint ns, Date and (fractional) ms, 64-bit inode numbers and nlink 0", async () => {
    const file = (atime: StatTime, mtime: StatTime, ino: number | bigint, nlink?: number) => ({
      mode: S_IFREG | 0o644,
      uid: 0,
      gid: 0,
      atime,
      mtime,
      ino,
      nlink,
    });
    mount.nodes.set("/t-timespec", file({ sec: 1_500_000_000, nsec: 1 }, { sec: -2, nsec: 999_999_999 }, 1001));
    mount.nodes.set("/t-bigint", file(1_600_000_000_123_456_789n, -1_500_000_000n, 2n ** 63n + 5n));
    mount.nodes.set("/t-date", file(new Date(1_700_000_000_123), new Date(-1), 1002));
    mount.nodes.set("/t-ms", file(1_500_000_000_250, 1_500_000_000_250.5, 2 ** 40 + 3, 0));
    const shown = await python(
      "import os,sys\nfor p in sys.argv[1:]:\n  s=os.stat(p); print(s.st_atime_ns, s.st_mtime_ns, s.st_ino, s.st_nlink)",
      ...["t-timespec", "t-bigint", "t-date", "t-ms"].map(path),
    );
    assert.deepEqual(shown.split("\n"), [
      "1500000000000000001 -1000000001 1001 1",
      `1600000000123456789 -1500000000 ${2n ** 63n + 5n} 1`,
      "1700000000123000000 -1000000 1002 1",
      `1500000000250000000 1500000000250500000 ${2 ** 40 + 3} 0`,
    ]);
  });

  it("cannot unlink an open file: libfuse 2 renames it to .fuse_hidden* until closed (and shows nlink 0)", async () => {
    // (With libfuse's hard_remove option it would be unlinked, but fstat(2) on it then fails with ENOENT:
    // the kernel's GETATTR for fstat carries no handle, and the high-level API finds files only by path.)
    const shown = await python(
      "import os,sys\np=sys.argv[1]\nfd=os.open(p, os.O_RDWR|os.O_CREAT)\nos.unlink(p)\nos.write(fd, b'x')\n" +
        "hidden=[n for n in os.listdir(os.path.dirname(p)) if n.startswith('.fuse_hidden')]\n" +
        "print(os.fstat(fd).st_nlink, os.path.exists(p), len(hidden))\nos.close(fd)",
      path("unlinked-open.txt"),
    );
    assert.equal(shown, "0 False 1");
    const hidden = mount.recorded.rename.find((call) => call.from === "/unlinked-open.txt");
    assert.ok(hidden && hidden.to.startsWith("/.fuse_hidden"), "unlink became a rename");
    await waitFor("the hidden file's unlink on release", () => mount.recorded.unlink.includes(hidden.to), 5_000);
  });

  it("tells create, mkdir, mknod and symlink which user is calling", async () => {
    const { stdout } = await asNobody("sh", "-c", 'echo $$; exec touch "$1"', "sh", path("nobody.txt"));
    const touchPid = Number(stdout.trim());
    await asNobody("mkdir", path("nobody-dir"));
    await asNobody("mkfifo", path("nobody-fifo"));
    await asNobody("ln", "-s", "nobody.txt", path("nobody-link"));

    const { recorded } = mount;
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

  it("passes fcntl record locks with range, pid and lock owner, and the unlock of close()", async () => {
    await writeFile(path("lockf.txt"), "");
    const pid = Number(
      await python(
        "import fcntl,os,sys\nfd=os.open(sys.argv[1], os.O_RDWR)\nfcntl.lockf(fd, fcntl.LOCK_EX|fcntl.LOCK_NB, 100, 10)\n" +
          "fcntl.lockf(fd, fcntl.LOCK_SH, 5, 200)\nfcntl.lockf(fd, fcntl.LOCK_UN, 100, 10)\nos.close(fd)\nprint(os.getpid())",
        path("lockf.txt"),
      ),
    );
    // (Creating the file above was a close(2) too: leave out that flush's unlock, from this process.)
    const calls = locksOn("lockf.txt").filter((call) => call.caller.pid === pid);
    const summary = calls.map(({ cmd, lock }) => [cmd, lock.type, lock.whence, lock.start, lock.len]);
    assert.deepEqual(summary, [
      [Fuse.F_SETLK, Fuse.F_WRLCK, Fuse.SEEK_SET, 10, 100],
      [Fuse.F_SETLKW, Fuse.F_RDLCK, Fuse.SEEK_SET, 200, 5],
      // lockf() waits (F_SETLKW) unless LOCK_NB, even to unlock
      [Fuse.F_SETLKW, Fuse.F_UNLCK, Fuse.SEEK_SET, 10, 100],
      // close(2): libfuse's flush drops the owner's locks on the whole file
      [Fuse.F_SETLK, Fuse.F_UNLCK, Fuse.SEEK_SET, 0, 0],
    ]);
    const [first] = calls;
    assert.ok(first);
    assert.equal(first.lock.pid, pid);
    assert.equal(calls[2]?.lock.pid, 0, "the kernel sends no pid with an unlock");
    assert.equal(first.caller.pid, pid);
    assert.ok(first.fd >= FIRST_FD, `fd ${first.fd} is the handle open() gave`);
    assert.equal(typeof first.owner, "bigint");
    assert.notEqual(first.owner, 0n);
    for (const call of calls) assert.equal(call.owner, first.owner, "one process, one lock owner");
  });

  it("passes OFD locks with their open file's own owner, which close() does not unlock", async () => {
    await writeFile(path("ofd.txt"), "");
    const pid = Number(
      await python(
        "import fcntl,os,struct,sys\nfirst=os.open(sys.argv[1], os.O_RDWR)\nsecond=os.open(sys.argv[1], os.O_RDWR)\n" +
          "ofd=lambda fd,start: fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhxxxxqqixxxx', fcntl.F_WRLCK, 0, start, 10, 0))\n" +
          "ofd(first, 0)\nofd(second, 20)\nfcntl.lockf(first, fcntl.LOCK_EX|fcntl.LOCK_NB, 10, 40)\nos.close(first)\nos.close(second)\nprint(os.getpid())",
        path("ofd.txt"),
      ),
    );
    const calls = locksOn("ofd.txt").filter((call) => call.caller.pid === pid);
    const [firstOfd, secondOfd, classic, ...flushes] = calls;
    assert.ok(firstOfd && secondOfd && classic);
    assert.deepEqual(
      [firstOfd, secondOfd, classic].map(({ cmd, lock }) => [cmd, lock.type, lock.start]),
      [
        [Fuse.F_SETLK, Fuse.F_WRLCK, 0],
        [Fuse.F_SETLK, Fuse.F_WRLCK, 20],
        [Fuse.F_SETLK, Fuse.F_WRLCK, 40],
      ],
    );
    assert.equal(new Set([firstOfd.owner, secondOfd.owner, classic.owner]).size, 3, "each open file and the process own apart");
    // Each close(2) unlocks only the process's own locks: the file system must drop OFD locks on release.
    assert.equal(flushes.length, 2);
    for (const flush of flushes) {
      assert.equal(flush.lock.type, Fuse.F_UNLCK);
      assert.equal(flush.owner, classic.owner);
    }
  });

  it("answers F_GETLK with the conflicting lock the handler returns", async () => {
    await writeFile(path("getlk.txt"), "");
    await writeFile(path("getlk-free.txt"), "");
    mount.policy.conflicts.set("/getlk.txt", { type: Fuse.F_RDLCK, whence: Fuse.SEEK_SET, start: 7, len: 3, pid: process.pid });
    // struct flock on x86-64: short type, short whence, (pad), off_t start, off_t len, pid_t pid, (pad)
    const getlk =
      "import fcntl,os,struct,sys\nfor p in sys.argv[1:]:\n  fd=os.open(p, os.O_RDWR)\n" +
      "  t,w,s,l,pid=struct.unpack('hhxxxxqqixxxx', fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhxxxxqqixxxx', fcntl.F_WRLCK, 0, 0, 0, 0)))\n" +
      "  print(t, s, l, pid)";
    const shown = await python(getlk, path("getlk.txt"), path("getlk-free.txt"));
    assert.deepEqual(shown.split("\n"), [`${Fuse.F_RDLCK} 7 3 ${process.pid}`, `${Fuse.F_UNLCK} 0 0 0`]);
    const asked = locksOn("getlk.txt").find((call) => call.cmd === Fuse.F_GETLK);
    assert.ok(asked, "the handler was asked");
    assert.deepEqual(asked.lock, { type: Fuse.F_WRLCK, whence: Fuse.SEEK_SET, start: 0, len: 0, pid: 0 });
  });

  it("passes flock with LOCK_NB and the file's owner, and LOCK_UN when the last descriptor closes", async () => {
    await writeFile(path("flock.txt"), "");
    await python(
      "import fcntl,os,sys\nfd=os.open(sys.argv[1], os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX|fcntl.LOCK_NB)\n" +
        "fcntl.flock(fd, fcntl.LOCK_SH)\nos.close(fd)",
      path("flock.txt"),
    );
    // The kernel sends release (which carries the unlock) after close(2) has returned.
    await waitFor("flock LOCK_UN on release", () => flocksOn("flock.txt").length === 3, 5_000);
    const calls = flocksOn("flock.txt");
    assert.deepEqual(
      calls.map((call) => call.op),
      [Fuse.LOCK_EX | Fuse.LOCK_NB, Fuse.LOCK_SH, Fuse.LOCK_UN],
    );
    const [first] = calls;
    assert.ok(first);
    assert.ok(first.fd >= FIRST_FD);
    assert.notEqual(first.owner, 0n);
    for (const call of calls) assert.equal(call.owner, first.owner, "one open file, one lock owner");
  });

  it("passes fallocate modes, offset, length and handle", async () => {
    const name = "fallocate.bin";
    await writeFile(path(name), "");
    await python("import os,sys\nfd=os.open(sys.argv[1], os.O_RDWR)\nos.posix_fallocate(fd, 4096, 8192)", path(name));
    const big = 2 ** 40;
    await run("fallocate", ["--keep-size", "--offset", String(big), "--length", "65536", path(name)], { timeout: COMMAND_TIMEOUT_MS });
    await run("fallocate", ["--punch-hole", "--offset", "512", "--length", "1024", path(name)], { timeout: COMMAND_TIMEOUT_MS });
    await run("fallocate", ["--zero-range", "--offset", "0", "--length", "4096", path(name)], { timeout: COMMAND_TIMEOUT_MS });
    const calls = mount.recorded.fallocate.filter((call) => call.path === `/${name}`);
    assert.deepEqual(
      calls.map(({ mode, offset, length }) => [mode, offset, length]),
      [
        [0, 4096, 8192],
        [Fuse.FALLOC_FL_KEEP_SIZE, big, 65536],
        [Fuse.FALLOC_FL_PUNCH_HOLE | Fuse.FALLOC_FL_KEEP_SIZE, 512, 1024],
        [Fuse.FALLOC_FL_ZERO_RANGE, 0, 4096],
      ],
    );
    for (const call of calls) assert.ok(call.fd >= FIRST_FD);
  });

  it("cannot carry renameat2 flags: the kernel sends RENAME2 only to FUSE protocol 7.23+, libfuse 2.9 speaks 7.19", async () => {
    await writeFile(path("rename-from.txt"), "");
    await writeFile(path("rename-other.txt"), "");
    // -100 is AT_FDCWD. RENAME_NOREPLACE (1) onto a free name; RENAME_EXCHANGE (2) of two names (the VFS
    // itself answers NOREPLACE onto an existing name with EEXIST, and EXCHANGE with a missing one with ENOENT).
    const shown = await python(
      "import ctypes,errno,sys\nlibc=ctypes.CDLL(None, use_errno=True)\nfor flags,target in ((1, sys.argv[2]), (2, sys.argv[3])):\n" +
        "  r=libc.renameat2(-100, sys.argv[1].encode(), -100, target.encode(), flags)\n  print(r, errno.errorcode[ctypes.get_errno()])",
      path("rename-from.txt"),
      path("rename-free.txt"),
      path("rename-other.txt"),
    );
    assert.deepEqual(shown.split("\n"), ["-1 EINVAL", "-1 EINVAL"]);
  });

  it("keeps serving other requests while an F_SETLKW waits for its answer", async () => {
    await writeFile(path("wait.txt"), "");
    await writeFile(path("other.txt"), "");
    const held = nextHeldLock(mount.policy, "/wait.txt");
    const waiter = await startChild(BLOCKING_LOCKF, path("wait.txt"));
    const request = await withTimeout<HeldLock>("the F_SETLKW request", 5_000, (cb) => {
      held.then((value) => cb(null, value), cb);
    });
    assert.ok(request);
    // A second waiter on another FUSE thread, and ordinary traffic from another process, all at once.
    const secondHeld = nextHeldLock(mount.policy, "/other.txt");
    const second = await startChild(BLOCKING_LOCKF, path("other.txt"));
    const traffic = await python(
      "import fcntl,os,sys\nd=sys.argv[1]\nfor i in range(20):\n  p=os.path.join(d,'busy%d'%i); open(p,'w').write('x'); os.stat(p)\n" +
        "fd=os.open(os.path.join(d,'other.txt'), os.O_RDWR)\nfcntl.lockf(fd, fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint(len(os.listdir(d)))",
      mountpoint,
    );
    assert.ok(Number(traffic) > 20, `listing shows the new files (${traffic})`);
    assert.equal(waiter.child.exitCode, null, "the first waiter still waits");
    const secondRequest = await secondHeld;
    secondRequest.answer(0);
    request.answer(0);
    for (const child of [waiter, second]) {
      assert.deepEqual(await exitOf(child, 5_000), { code: 0, signal: null });
      assert.match(child.output(), /locked/);
    }
  });

  it("frees the native side of each FUSE thread libfuse ends (it keeps at most 10 idle)", async () => {
    // The patch's registry of live thread locals (one per FUSE thread that has served a request)
    const threads = (mount.fuse as unknown as { _threads: Set<Buffer> })._threads;
    const names = Array.from({ length: 13 }, (_, i) => `burst-${i}.txt`);
    await Promise.all(names.map((name) => writeFile(path(name), "")));
    const held = names.map((name) => nextHeldLock(mount.policy, `/${name}`));
    // One process, a thread blocked in F_SETLKW per file: a FUSE thread each
    const waiter = await startChild(
      "import fcntl,os,sys,threading\nlock=lambda p: fcntl.lockf(os.open(p, os.O_RDWR), fcntl.LOCK_EX)\n" +
        "threads=[threading.Thread(target=lock, args=(p,)) for p in sys.argv[1:]]\n" +
        "[t.start() for t in threads]\n[t.join() for t in threads]\nprint('locked', len(threads))",
      ...names.map(path),
    );
    const requests = await withTimeout<HeldLock[]>(`${names.length} waiting lock requests`, 10_000, (cb) => {
      Promise.all(held).then((all) => cb(null, all), cb);
    });
    assert.ok(threads.size >= names.length, `${threads.size} FUSE threads serve ${names.length} waits`);
    for (const request of requests ?? []) request.answer(0);
    assert.deepEqual(await exitOf(waiter, 5_000), { code: 0, signal: null });
    assert.match(waiter.output(), /locked 13/);
    await waitFor("the FUSE threads beyond 10 idle ones to end", () => threads.size <= 10, 5_000);
  });

  it("tells a waiting handler when the kernel interrupts its request (a signal to the waiting process)", async () => {
    await writeFile(path("interrupt.txt"), "");
    for (const signal of ["SIGUSR1", "SIGKILL"] as const) {
      const held = nextHeldLock(mount.policy, "/interrupt.txt");
      const waiter = await startChild(BLOCKING_LOCKF, path("interrupt.txt"));
      const request = await held;
      const interrupted = new Promise<number>((resolve) => {
        request.caller.signal.addEventListener("abort", () => resolve(Date.now()), { once: true });
      });
      assert.equal(request.caller.signal.aborted, false);
      const sentAt = Date.now();
      waiter.child.kill(signal);
      const abortedAt = await withTimeout<number>(`abort after ${signal}`, INTERRUPT_REACHES_JS_MS, (cb) => {
        interrupted.then((at) => cb(null, at), cb);
      });
      assert.ok(abortedAt !== undefined && abortedAt - sentAt < INTERRUPT_REACHES_JS_MS);
      request.answer(Fuse.EINTR);
      const exit = await exitOf(waiter, 5_000);
      if (signal === "SIGKILL") {
        // Killed while its request was with us: it stayed in the kernel until the answer above.
        assert.equal(exit.signal, "SIGKILL");
      } else {
        // EINTR ran the signal handler, whose exception ended the wait.
        assert.match(waiter.output(), /failed InterruptedError/);
      }
    }
  });
});

describe("patched fuse-native: names as bytes (namesAsBuffers)", { timeout: 60_000 }, () => {
  let mount: Awaited<ReturnType<typeof mountFileSystem>> | undefined;
  const paths: Buffer[] = [];

  before(async () => {
    mount = await mountFileSystem(byteNamedFileSystem(paths), { timeout: 5_000, namesAsBuffers: true });
  });

  after(async () => {
    await mount?.close();
  });

  it("passes every byte of a name and link target both ways, however it decodes", async () => {
    assert.ok(mount);
    // Every byte but NUL and "/", after an "n" (so "." and ".." stay out), and 200 bytes that are no UTF-8.
    const shown = await python(
      "import os,sys\nd=os.fsencode(sys.argv[1])\nnames=[b'n'+bytes([b]) for b in range(1,256) if b!=0x2f]+[b'\\xc3'*200]\n" +
        "for n in names: open(os.path.join(d,n),'wb').close()\nlink=os.path.join(d,b'link\\xff')\nos.symlink(b'\\xff\\xfe/\\x80', link)\n" +
        "print(sorted(os.listdir(d))==sorted(names+[b'link\\xff']), os.readlink(link)==b'\\xff\\xfe/\\x80', len(names))",
      mount.mountpoint,
    );
    assert.equal(shown, "True True 255");
    assert.ok(paths.every((path) => Buffer.isBuffer(path)));
    assert.ok(paths.some((path) => path.equals(Buffer.from([0x2f, 0x6e, 0xff]))), "/n\\xff reached a handler as its bytes");
  });
});

describe("patched fuse-native: unmounting while an F_SETLKW waits", { timeout: 60_000 }, () => {
  let mount: TestMount | undefined;
  let waiter: Started | undefined;

  after(async () => {
    await waiter?.stop("SIGKILL");
    await mount?.close();
  });

  it("unmounts at once, and the waiting process ends once the request is answered", async () => {
    mount = await mountTestFileSystem();
    const { mountpoint, policy } = mount;
    await writeFile(join(mountpoint, "held.txt"), "");
    const held = nextHeldLock(policy, "/held.txt");
    waiter = await startPython(BLOCKING_LOCKF, join(mountpoint, "held.txt"));
    const request = await held;

    const fuse = mount.fuse;
    await withTimeout("unmount with a lock request outstanding", 10_000, (cb) => fuse.unmount(cb));
    assert.equal(await isMounted(mountpoint), false);
    // The detached mount lives on while the waiter holds its file open; the answer still reaches it.
    assert.equal(waiter.child.exitCode, null);
    request.answer(0);
    assert.deepEqual(await exitOf(waiter, 5_000), { code: 0, signal: null });
    assert.match(waiter.output(), /locked/);
  });
});

// A file system that does nothing but keep its tree in memory, mounted through the same patched
// fuse-native and kernel options as natsfs: what it reaches is the ceiling of the FUSE adapter itself
// (fuse-native-facts.md). Data is never stored or copied: a write only grows the file, a read answers
// with the byte count and leaves the kernel's buffer as it is.
//
//   node --import tsx test/bench/noop-fs.ts [--attr-timeout S] MOUNTPOINT
//
// Prints "mounted" once the mount is live; unmounts and exits on SIGTERM or SIGINT.
import { constants } from "node:os";
import Fuse from "fuse-native";
import { KERNEL_MAX_IO, fsnameWithRiders } from "../../src/client/fuse-adapter.js";

type Cb = (code: number, ...values: unknown[]) => void;

interface Node {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** Present on directories only. */
  children?: Map<string, Node>;
}

const { ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, ENODATA } = constants.errno;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

let lastIno = 1;
function newNode(mode: number, owner: { uid: number; gid: number }): Node {
  const node: Node = { ino: ++lastIno, mode, uid: owner.uid, gid: owner.gid, size: 0, mtimeMs: Date.now() };
  if ((mode & S_IFDIR) === S_IFDIR) node.children = new Map();
  return node;
}

const root: Node = { ino: 1, mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 4096, mtimeMs: Date.now(), children: new Map() };

/** Splits "/a/b/c" into its parent's path components and its own name. */
function splitPath(path: string): { parent: string[]; name: string } {
  const parts = path.split("/").filter(Boolean);
  return { parent: parts.slice(0, -1), name: parts.at(-1) ?? "" };
}

function walk(parts: string[]): Node | undefined {
  let node: Node | undefined = root;
  for (const part of parts) node = node?.children?.get(part);
  return node;
}

const lookup = (path: string): Node | undefined => walk(path.split("/").filter(Boolean));

function kernelStat(node: Node) {
  return {
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    size: node.size,
    dev: 0,
    nlink: node.children ? 2 : 1,
    ino: node.ino,
    rdev: 0,
    blksize: 4096,
    blocks: Math.ceil(node.size / 512),
    atime: node.mtimeMs,
    mtime: node.mtimeMs,
    ctime: node.mtimeMs,
  };
}

/** Adds a new object at `path`; the callback gets 0 or a negative errno. */
function add(path: string, mode: number, caller: { uid: number; gid: number }): number {
  const { parent, name } = splitPath(path);
  const dir = walk(parent);
  if (!dir) return -ENOENT;
  if (!dir.children) return -ENOTDIR;
  if (dir.children.has(name)) return -EEXIST;
  dir.children.set(name, newNode(mode, caller));
  return 0;
}

function remove(path: string, wantDir: boolean): number {
  const { parent, name } = splitPath(path);
  const dir = walk(parent);
  const node = dir?.children?.get(name);
  if (!node) return -ENOENT;
  if (wantDir && !node.children) return -ENOTDIR;
  if (wantDir && node.children!.size > 0) return -ENOTEMPTY;
  dir!.children!.delete(name);
  return 0;
}

function rename(from: string, to: string): number {
  const source = splitPath(from);
  const target = splitPath(to);
  const sourceDir = walk(source.parent);
  const targetDir = walk(target.parent);
  const node = sourceDir?.children?.get(source.name);
  if (!node || !targetDir?.children) return -ENOENT;
  sourceDir!.children!.delete(source.name);
  targetDir.children.set(target.name, node);
  return 0;
}

/** Runs `change` on the node at `path`, answering ENOENT when there is none. */
function update(path: string, cb: Cb, change: (node: Node) => void): void {
  const node = lookup(path);
  if (!node) return cb(-ENOENT);
  change(node);
  cb(0);
}

/** The calling process, which the patched fuse-native passes after the callback. */
interface Caller {
  uid: number;
  gid: number;
}
const ownerOf = (caller?: Caller) => caller ?? { uid: 0, gid: 0 };

const handlers = {
  getattr: (path: string, cb: Cb) => {
    const node = lookup(path);
    return node ? cb(0, kernelStat(node)) : cb(-ENOENT);
  },
  fgetattr: (path: string, _fh: number, cb: Cb) => handlers.getattr(path, cb),
  access: (_path: string, _mode: number, cb: Cb) => cb(0),
  statfs: (_path: string, cb: Cb) =>
    cb(0, { bsize: 4096, frsize: 4096, blocks: 1 << 30, bfree: 1 << 30, bavail: 1 << 30, files: 1 << 24, ffree: 1 << 24, favail: 1 << 24, fsid: 0, flag: 0, namemax: 255 }),
  opendir: (_path: string, _flags: number, cb: Cb) => cb(0, 0),
  releasedir: (_path: string, _fh: number, cb: Cb) => cb(0),
  readdir: (path: string, cb: Cb) => {
    const node = lookup(path);
    if (!node?.children) return cb(node ? -ENOTDIR : -ENOENT);
    cb(0, [...node.children.keys()]);
  },
  open: (path: string, _flags: number, cb: Cb) => (lookup(path) ? cb(0, 0) : cb(-ENOENT)),
  create: (path: string, mode: number, cb: Cb, caller?: Caller) => cb(add(path, S_IFREG | (mode & 0o7777), ownerOf(caller)), 0),
  mknod: (path: string, mode: number, _rdev: number, cb: Cb, caller?: Caller) => cb(add(path, mode, ownerOf(caller))),
  mkdir: (path: string, mode: number, cb: Cb, caller?: Caller) => cb(add(path, S_IFDIR | (mode & 0o7777), ownerOf(caller))),
  read: (path: string, _fh: number, _buffer: Buffer, length: number, offset: number, cb: Cb) => {
    const size = lookup(path)?.size ?? 0;
    cb(Math.max(0, Math.min(length, size - offset)));
  },
  write: (path: string, _fh: number, _buffer: Buffer, length: number, offset: number, cb: Cb) => {
    const node = lookup(path);
    if (!node) return cb(-ENOENT);
    node.size = Math.max(node.size, offset + length);
    cb(length);
  },
  flush: (_path: string, _fh: number, cb: Cb) => cb(0),
  fsync: (_path: string, _datasync: number, _fh: number, cb: Cb) => cb(0),
  release: (_path: string, _fh: number, cb: Cb) => cb(0),
  truncate: (path: string, size: number, cb: Cb) => update(path, cb, (node) => (node.size = size)),
  ftruncate: (path: string, _fh: number, size: number, cb: Cb) => update(path, cb, (node) => (node.size = size)),
  unlink: (path: string, cb: Cb) => cb(remove(path, false)),
  rmdir: (path: string, cb: Cb) => cb(remove(path, true)),
  rename: (from: string, to: string, cb: Cb) => cb(rename(from, to)),
  chmod: (path: string, mode: number, cb: Cb) => update(path, cb, (node) => (node.mode = (node.mode & ~0o7777) | (mode & 0o7777))),
  chown: (path: string, uid: number, gid: number, cb: Cb) => update(path, cb, (node) => Object.assign(node, { uid, gid })),
  utimens: (path: string, _atime: number, mtime: number, cb: Cb) => update(path, cb, (node) => (node.mtimeMs = mtime >= 0 ? mtime : node.mtimeMs)),
  // Asked for by `ls -l` (ACLs, security labels) as it is from natsfs: one adapter round trip each.
  getxattr: (_path: string, _name: string, _position: number, cb: Cb) => cb(-ENODATA),
  listxattr: (_path: string, cb: Cb) => cb(0, []),
};

function parseArgs(argv: string[]): { mountpoint: string; attrTimeoutS: number } {
  let attrTimeoutS = 0;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--attr-timeout") attrTimeoutS = Number(argv[++i]);
    else rest.push(argv[i]!);
  }
  if (rest.length !== 1 || !Number.isFinite(attrTimeoutS) || attrTimeoutS < 0) {
    process.stderr.write("usage: noop-fs.ts [--attr-timeout S] MOUNTPOINT\n");
    process.exit(2);
  }
  return { mountpoint: rest[0]!, attrTimeoutS };
}

const { mountpoint, attrTimeoutS } = parseArgs(process.argv.slice(2));
const fuse = new Fuse(mountpoint, handlers as never, {
  allowOther: true,
  defaultPermissions: true,
  fsname: fsnameWithRiders("noop", { attrTimeoutS, entryTimeoutS: attrTimeoutS }),
  subtype: "noop",
  maxRead: KERNEL_MAX_IO,
  timeout: false,
  force: true,
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  fuse.unmount(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`noop-fs: mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write("mounted\n");
});

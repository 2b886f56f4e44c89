import Fuse, { type Timespec } from "fuse-native";
import { FsError, errnoOf, statTimespec, type Owner, type SetTime, type Stat, type StatFs } from "../protocol/index.js";
import type { Vfs } from "./vfs.js";

/** The calling process, which our patched fuse-native passes after the callback. */
interface Caller {
  uid: number;
  gid: number;
}

/**
 * The only file that knows fuse-native. It turns kernel callbacks into VFS calls and errors into
 * negative errnos, and keeps the package's limits in one place (fuse-native-facts.md).
 */

export interface KernelMountOptions {
  mountpoint: string;
  /** Shown as the source in /proc/mounts and df. */
  sourceName: string;
  attrTimeoutS: number;
  entryTimeoutS: number;
  /** Called for failures that are bugs rather than file system answers. */
  onUnexpectedError: (op: string, err: unknown) => void;
}

/** Largest read and write the kernel sends us. */
export const KERNEL_MAX_IO = 128 * 1024;

/**
 * fuse-native builds its `-o` list only from keys it knows: it has no `big_writes` (libfuse 2 then sends
 * 4 KiB writes) and drops a cache timeout of 0 as falsy. The package joins option values with commas,
 * so these libfuse options ride in fsname's value. `use_ino` makes the kernel show the server's inode
 * numbers, so hard links share one.
 */
export function fsnameWithRiders(sourceName: string, cache: { attrTimeoutS: number; entryTimeoutS: number }): string {
  return [
    sourceName.replace(/[,\s]/g, "_"),
    "big_writes",
    `max_write=${KERNEL_MAX_IO}`,
    "use_ino",
    `attr_timeout=${cache.attrTimeoutS}`,
    `entry_timeout=${cache.entryTimeoutS}`,
  ].join(",");
}

/** The kernel's statfs fields are 32-bit here: grow the block size until the block counts fit. */
export function fitStatfs(stats: StatFs): StatFs {
  const limit = 0xffffffff;
  let factor = 1;
  while (stats.blocks / factor > limit) factor *= 2;
  const clamp = (n: number) => Math.min(n, limit);
  return {
    ...stats,
    bsize: stats.bsize * factor,
    frsize: stats.frsize * factor,
    blocks: Math.floor(stats.blocks / factor),
    bfree: Math.floor(stats.bfree / factor),
    bavail: Math.floor(stats.bavail / factor),
    files: clamp(stats.files),
    ffree: clamp(stats.ffree),
    favail: clamp(stats.favail),
  };
}

function kernelStat(stat: Stat) {
  return {
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    size: stat.size,
    dev: stat.dev,
    nlink: stat.nlink,
    ino: stat.ino,
    rdev: stat.rdev,
    blksize: stat.blksize,
    blocks: stat.blocks,
    atime: statTimespec(stat.atimeMs, stat.atimeNsec),
    mtime: statTimespec(stat.mtimeMs, stat.mtimeNsec),
    ctime: statTimespec(stat.ctimeMs, stat.ctimeNsec),
  };
}

type Cb = (code: number, ...values: unknown[]) => void;

export class KernelMount {
  private readonly fuse: Fuse;

  constructor(
    private readonly vfs: Vfs,
    private readonly options: KernelMountOptions,
  ) {
    this.fuse = new Fuse(options.mountpoint, this.handlers() as never, {
      allowOther: true,
      defaultPermissions: true,
      fsname: fsnameWithRiders(options.sourceName, options),
      subtype: "natsfs",
      maxRead: KERNEL_MAX_IO,
      // A hard mount blocks through outages: fuse-native must not answer the kernel on its own.
      timeout: false,
      force: true,
    });
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((err) => (err ? reject(err) : resolve())));
  }

  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((err) => (err ? reject(err) : resolve())));
  }

  /** Answers `cb` with 0 and the value, or with the negative errno of the failure. */
  private answer<T>(op: string, cb: Cb, work: Promise<T>, reply: (value: T) => unknown[] = () => []): void {
    work.then(
      (value) => cb(0, ...reply(value)),
      (err: unknown) => {
        if (!(err instanceof FsError)) this.options.onUnexpectedError(op, err);
        cb(-errnoOf(err));
      },
    );
  }

  /** Like `answer`, for ops whose success code is a byte count. */
  private answerCount(op: string, cb: Cb, work: Promise<number>): void {
    work.then(
      (count) => cb(count),
      (err: unknown) => {
        if (!(err instanceof FsError)) this.options.onUnexpectedError(op, err);
        cb(-errnoOf(err));
      },
    );
  }

  private handlers() {
    const vfs = this.vfs;
    return {
      getattr: (path: string, cb: Cb, caller?: Caller) => this.answer("getattr", cb, vfs.getattr(path, callerOf(caller)), (s) => [kernelStat(s)]),
      // Our fuse-native patch passes the handle (upstream calls getattr by path instead).
      fgetattr: (path: string, fh: number, cb: Cb, caller?: Caller) =>
        this.answer("fgetattr", cb, vfs.fgetattr(fh, path, callerOf(caller)), (s) => [kernelStat(s)]),
      access: (path: string, mode: number, cb: Cb, caller?: Caller) => this.answer("access", cb, vfs.access(path, mode, callerOf(caller))),
      statfs: (path: string, cb: Cb, caller?: Caller) => this.answer("statfs", cb, vfs.statfs(path, callerOf(caller)), (s) => [fitStatfs(s)]),
      readdir: (path: string, cb: Cb, caller?: Caller) => this.answer("readdir", cb, vfs.readdir(path, callerOf(caller)), (names) => [names]),
      opendir: (path: string, _flags: number, cb: Cb, caller?: Caller) => this.answer("opendir", cb, vfs.opendir(path, callerOf(caller)), (fh) => [fh]),
      releasedir: (_path: string, fh: number, cb: Cb) => this.answer("releasedir", cb, vfs.releasedir(fh)),
      open: (path: string, flags: number, cb: Cb, caller?: Caller) => this.answer("open", cb, vfs.open(path, flags, callerOf(caller)), (fh) => [fh]),
      create: (path: string, mode: number, cb: Cb, caller?: Caller) =>
        this.answer("create", cb, vfs.create(path, mode, callerOf(caller)), (fh) => [fh]),
      read: (_path: string, fh: number, buffer: Buffer, length: number, offset: number, cb: Cb) =>
        this.answerCount(
          "read",
          cb,
          vfs.read(fh, length, offset).then((data) => {
            const n = Math.min(data.length, length);
            buffer.set(data.subarray(0, n));
            return n;
          }),
        ),
      write: (_path: string, fh: number, buffer: Buffer, length: number, offset: number, cb: Cb) =>
        this.answerCount("write", cb, vfs.write(fh, buffer.subarray(0, length), offset)),
      flush: (_path: string, fh: number, cb: Cb) => this.answer("flush", cb, vfs.flush(fh)),
      fsync: (_path: string, datasync: number, fh: number, cb: Cb) => this.answer("fsync", cb, vfs.fsync(fh, datasync !== 0)),
      fsyncdir: (_path: string, datasync: number, fh: number, cb: Cb) => this.answer("fsyncdir", cb, vfs.fsyncdir(fh, datasync !== 0)),
      fallocate: (_path: string, mode: number, offset: number, length: number, fh: number, cb: Cb) =>
        this.answer("fallocate", cb, vfs.fallocate(fh, mode, offset, length)),
      release: (_path: string, fh: number, cb: Cb) => this.answer("release", cb, vfs.release(fh)),
      truncate: (path: string, size: number, cb: Cb, caller?: Caller) => this.answer("truncate", cb, vfs.truncate(path, size, callerOf(caller))),
      ftruncate: (_path: string, fh: number, size: number, cb: Cb) => this.answer("ftruncate", cb, vfs.ftruncate(fh, size)),
      unlink: (path: string, cb: Cb, caller?: Caller) => this.answer("unlink", cb, vfs.unlink(path, callerOf(caller))),
      rename: (from: string, to: string, cb: Cb, caller?: Caller) => this.answer("rename", cb, vfs.rename(from, to, callerOf(caller))),
      mkdir: (path: string, mode: number, cb: Cb, caller?: Caller) => this.answer("mkdir", cb, vfs.mkdir(path, mode, callerOf(caller))),
      rmdir: (path: string, cb: Cb, caller?: Caller) => this.answer("rmdir", cb, vfs.rmdir(path, callerOf(caller))),
      symlink: (target: string, path: string, cb: Cb, caller?: Caller) =>
        this.answer("symlink", cb, vfs.symlink(target, path, callerOf(caller))),
      readlink: (path: string, cb: Cb, caller?: Caller) => this.answer("readlink", cb, vfs.readlink(path, callerOf(caller)), (target) => [target]),
      link: (from: string, to: string, cb: Cb, caller?: Caller) => this.answer("link", cb, vfs.link(from, to, callerOf(caller))),
      mknod: (path: string, mode: number, rdev: number, cb: Cb, caller?: Caller) =>
        this.answer("mknod", cb, vfs.mknod(path, mode, rdev, callerOf(caller))),
      chmod: (path: string, mode: number, cb: Cb, caller?: Caller) => this.answer("chmod", cb, vfs.chmod(path, mode, callerOf(caller))),
      chown: (path: string, uid: number, gid: number, cb: Cb, caller?: Caller) => this.answer("chown", cb, vfs.chown(path, uid, gid, callerOf(caller))),
      utimens: (path: string, atime: Timespec, mtime: Timespec, cb: Cb, caller?: Caller) =>
        this.answer("utimens", cb, vfs.utimens(path, setTime(atime), setTime(mtime), callerOf(caller))),
      setxattr: (path: string, name: string, value: Buffer, _position: number, flags: number, cb: Cb, caller?: Caller) =>
        this.answer("setxattr", cb, vfs.setxattr(path, name, Buffer.from(value), flags, callerOf(caller))),
      getxattr: (path: string, name: string, _position: number, cb: Cb, caller?: Caller) =>
        this.answer("getxattr", cb, vfs.getxattr(path, name, callerOf(caller)), (value) => [Buffer.from(value)]),
      listxattr: (path: string, cb: Cb, caller?: Caller) => this.answer("listxattr", cb, vfs.listxattr(path, callerOf(caller)), (names) => [names]),
      removexattr: (path: string, name: string, cb: Cb, caller?: Caller) => this.answer("removexattr", cb, vfs.removexattr(path, name, callerOf(caller))),
    };
  }
}

/** A utimensat(2) time as the protocol carries it: to the nanosecond, or UTIME_NOW / UTIME_OMIT as such. */
export function setTime(time: Timespec): SetTime {
  if (time.nsec === Fuse.UTIME_OMIT) return "omit";
  if (time.nsec === Fuse.UTIME_NOW) return "now";
  return { sec: time.sec, nsec: time.nsec };
}

/** The calling process, sent with every path op (absent only with an unpatched fuse-native). */
function callerOf(caller: Caller | undefined): Owner | undefined {
  return caller && typeof caller.uid === "number" && typeof caller.gid === "number" ? { uid: caller.uid, gid: caller.gid } : undefined;
}

import { release } from "node:os";
import koffi from "koffi";
import { ERRNO, FsError } from "../protocol/index.js";

/**
 * The Linux system calls the server needs and Node lacks, through one FFI (koffi) instead of child
 * processes or a native addon per call. Every call runs on libuv's thread pool (koffi's `.async`), so
 * a slow disk never blocks the event loop; each resolves to a plain number or rejects with an FsError
 * carrying the call's errno. Linux and glibc only (the server is Linux-only anyway).
 */

/** openat2(2) `resolve` flags (linux/openat2.h). */
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
/** What confinement asks of every lookup: stay below the directory, follow no symlink of any kind. */
export const RESOLVE_CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** fallocate(2) modes. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** renameat2(2) flags. */
export const RENAME_NOREPLACE = 0x1;
export const RENAME_EXCHANGE = 0x2;

/** utimensat(2) nanosecond values with a special meaning. */
export const UTIME_NOW = 0x3fffffff;
export const UTIME_OMIT = 0x3ffffffe;

/** Not in Node's fs.constants: Node opens its own fds close-on-exec, and so must every fd made here. */
const O_CLOEXEC = 0o2000000;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** openat2 has no glibc wrapper before 2.42; its number is the same on every architecture. */
const SYS_OPENAT2 = 437;

/** A point in time as the kernel keeps it: whole seconds and nanoseconds within the second. */
export interface Timespec {
  sec: number;
  nsec: number;
}

const libc = koffi.load("libc.so.6");
const OpenHow = koffi.struct({ flags: "uint64", mode: "uint64", resolve: "uint64" });
const KernelTimespec = koffi.struct({ tv_sec: "int64", tv_nsec: "long" });

/**
 * syscall(2) is variadic, and koffi cannot call variadic functions asynchronously. Declaring it with
 * openat2's fixed arguments is sound on Linux's ABIs: integer arguments travel in the same registers
 * either way, and glibc's syscall is an assembly stub that reads no vararg state.
 */
const native = {
  openat2: libc.func("syscall", "long", ["long", "int", "str", koffi.pointer(OpenHow), "size_t"]),
  mknodat: libc.func("mknodat", "int", ["int", "str", "uint32", "uint64"]),
  fallocate: libc.func("fallocate64", "int", ["int", "int", "int64", "int64"]),
  renameat2: libc.func("renameat2", "int", ["int", "str", "int", "str", "uint32"]),
  utimensat: libc.func("utimensat", "int", ["int", "str", koffi.pointer(KernelTimespec), "int"]),
  futimens: libc.func("futimens", "int", ["int", koffi.pointer(KernelTimespec)]),
};

/**
 * Calls in flight at once: koffi's default `resident_async_pools`. koffi allocates 256 KiB for each
 * call beyond those and throws past `max_async_calls`, and libuv runs only a few threads anyway.
 * Further calls wait here, in order, costing a closure each.
 */
const MAX_CALLS_IN_FLIGHT = 8;

let callsInFlight = 0;
const waiting: (() => void)[] = [];

async function inTurn<T>(run: () => Promise<T>): Promise<T> {
  if (callsInFlight >= MAX_CALLS_IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
  else callsInFlight += 1;
  try {
    return await run();
  } finally {
    const next = waiting.shift();
    if (next) next(); // hands its slot on: callsInFlight stays the same
    else callsInFlight -= 1;
  }
}

/**
 * Runs one native call on the thread pool. A negative result is a failure: koffi sets errno to the
 * worker thread's value only while the callback runs, so it is read there and nowhere later.
 */
function callAsync(name: keyof typeof native, ...args: unknown[]): Promise<number> {
  return inTurn(
    () =>
      new Promise<number>((resolve, reject) => {
        native[name].async(...args, (err: unknown, result: number | bigint) => {
          if (err) reject(err);
          else if (result < 0) reject(new FsError(koffi.errno(), `${name} failed`));
          else resolve(Number(result));
        });
      }),
  );
}

function kernelTimes(atime: Timespec, mtime: Timespec) {
  return [atime, mtime].map(({ sec, nsec }) => ({ tv_sec: sec, tv_nsec: nsec }));
}

/**
 * openat(2) with `resolve` restrictions, returning a close-on-exec fd. ENOSYS means a kernel older
 * than 5.6 (or a seccomp profile that forbids openat2): said plainly, since the server cannot work.
 */
export async function openat2(dirFd: number, path: string, flags: number, mode: number, resolve: number): Promise<number> {
  try {
    return await callAsync("openat2", SYS_OPENAT2, dirFd, path, { flags: flags | O_CLOEXEC, mode, resolve }, koffi.sizeof(OpenHow));
  } catch (err) {
    if (err instanceof FsError && err.errno === ERRNO.ENOSYS) {
      throw new FsError(err.errno, `openat2 is unavailable on Linux ${release()}: the natsfs server needs Linux 5.6 or later, and a seccomp profile that allows openat2`);
    }
    throw err;
  }
}

/** Makes a FIFO, socket, regular file or device node `name` in the directory `dirFd`. */
export async function mknodat(dirFd: number, name: string, mode: number, dev: number): Promise<void> {
  await callAsync("mknodat", dirFd, name, mode, dev);
}

export async function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  await callAsync("fallocate", fd, mode, offset, length);
}

export async function renameat2(oldDirFd: number, oldName: string, newDirFd: number, newName: string, flags: number): Promise<void> {
  await callAsync("renameat2", oldDirFd, oldName, newDirFd, newName, flags);
}

/** The current directory as a `dirFd`: a `name` that is an absolute path ignores it anyway. */
export const AT_FDCWD = -100;

/**
 * Sets the times of `name` in `dirFd` to the nanosecond. A symlink gets the times itself, unless
 * `followSymlink` (which a /proc/self/fd path of a pinned inode needs: its magic link leads to the inode).
 */
export async function utimensat(dirFd: number, name: string, atime: Timespec, mtime: Timespec, followSymlink = false): Promise<void> {
  await callAsync("utimensat", dirFd, name, kernelTimes(atime, mtime), followSymlink ? 0 : AT_SYMLINK_NOFOLLOW);
}

export async function futimens(fd: number, atime: Timespec, mtime: Timespec): Promise<void> {
  await callAsync("futimens", fd, kernelTimes(atime, mtime));
}

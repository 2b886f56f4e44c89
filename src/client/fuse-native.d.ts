// The slice of fuse-native 2.2.6's API the kernel adapter uses (the package ships no types), as changed by
// patches/fuse-native+2.2.6.patch: every handler gets the calling process after its callback, and the lock,
// flock and fallocate operations and nanosecond times exist, and names can travel as bytes.
declare module "fuse-native" {
  type Callback = (code: number, ...values: unknown[]) => void;

  /** A time to the nanosecond, as in struct timespec; `sec` may be negative (before 1970). */
  interface Timespec {
    sec: number;
    nsec: number;
  }

  /**
   * A time in a getattr or readdir answer: { sec, nsec }, nanoseconds since the epoch as a bigint, a Date, or
   * milliseconds as a number (a fraction is kept as far as the double holds it, ~0.25 us for today's dates).
   */
  type StatTime = Timespec | bigint | Date | number;

  /** What getattr, fgetattr and readdir answer with. A missing nlink is 1; a missing time is now. */
  interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number | bigint;
    dev?: number;
    nlink?: number;
    /** 64 bits (shown to the kernel only with libfuse's use_ino option); a bigint keeps all of them exact. */
    ino?: number | bigint;
    rdev?: number;
    blksize?: number;
    blocks?: number | bigint;
    atime?: StatTime;
    mtime?: StatTime;
    ctime?: StatTime;
  }

  /** The process a kernel request comes from, passed to every handler after its callback. */
  interface Caller {
    readonly uid: number;
    readonly gid: number;
    readonly pid: number;
    /**
     * Aborts when the kernel interrupts the request: the process got a signal while waiting for the answer
     * (e.g. blocked in F_SETLKW, or killed). Reaches JS within ~0.1 s. The request still needs an answer,
     * typically Fuse.EINTR; after SIGKILL the process stays in D state until it gets one.
     */
    readonly signal: AbortSignal;
  }

  /** struct flock as the kernel passes it (whence is always SEEK_SET; len 0 means "to the end of the file"). */
  interface FileLock {
    /** Fuse.F_RDLCK, F_WRLCK or F_UNLCK */
    type: number;
    whence: number;
    start: number;
    len: number;
    /**
     * The locking process for F_SETLK/F_SETLKW (0 when unlocking, and in F_GETLK questions); in an F_GETLK
     * answer, the holder of the conflicting lock (the kernel shows 0 to the caller if no such process exists).
     */
    pid: number;
  }

  /**
   * POSIX record locks (fcntl F_GETLK/F_SETLK/F_SETLKW, lockf, OFD locks). `cmd` is Fuse.F_GETLK, F_SETLK or
   * F_SETLKW; `owner` is the kernel's lock owner (fuse_file_info.lock_owner: one per process's file table for
   * classic POSIX locks, one per open file description for OFD locks). For F_GETLK answer with the
   * conflicting lock, or with none / { type: F_UNLCK } if the range is free; a busy F_SETLK answers
   * Fuse.EAGAIN. libfuse also calls this with F_SETLK/F_UNLCK over the whole file (start 0, len 0) on every
   * close(2) of the file (the FLUSH request), with the closing process's owner: that ends the process's
   * locks, but not OFD locks, whose owner is their open file. Nothing unlocks those but the file system: by
   * release(fd), drop every lock still held that was taken through fd.
   */
  type LockHandler = (
    path: string,
    fd: number,
    cmd: number,
    lock: FileLock,
    owner: bigint,
    cb: (code: number, conflict?: FileLock) => void,
    caller: Caller,
  ) => void;

  /**
   * BSD locks (flock(2)). `op` is Fuse.LOCK_SH, LOCK_EX or LOCK_UN, or'ed with LOCK_NB when the caller does not
   * wait; `owner` is the open file description's lock owner. On the last close of a file that held a flock,
   * the handler is called with LOCK_UN (before release).
   */
  type FlockHandler = (path: string, fd: number, op: number, owner: bigint, cb: (code: number) => void, caller: Caller) => void;

  /** fallocate(2); `mode` is 0 or a mix of Fuse.FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE. */
  type FallocateHandler = (
    path: string,
    mode: number,
    offset: number,
    length: number,
    fd: number,
    cb: (code: number) => void,
    caller: Caller,
  ) => void;

  /** utimensat(2): each time's nsec may instead be Fuse.UTIME_NOW (set to now) or Fuse.UTIME_OMIT (leave as is). */
  type UtimensHandler = (path: string, atime: Timespec, mtime: Timespec, cb: (code: number) => void, caller: Caller) => void;

  class Fuse {
    /**
     * Options of the patch, besides the package's own: `namesAsBuffers: true` hands every path, and the
     * targets of symlink, link and rename, to the handlers as Buffers of the kernel's bytes (Linux names need
     * not be UTF-8; as strings such bytes become U+FFFD); readdir and readlink answer with Buffers or strings.
     */
    constructor(mountpoint: string, ops: Record<string, (...args: never[]) => void>, options: Record<string, unknown>);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;

    // Negative errnos the handlers answer with (the package defines them all; these are the ones used here).
    static readonly EPERM: number;
    static readonly ENOENT: number;
    static readonly EINTR: number;
    static readonly EAGAIN: number;
    static readonly EEXIST: number;
    static readonly EINVAL: number;
    static readonly ENOLCK: number;
    static readonly EDEADLK: number;
    static readonly EOPNOTSUPP: number;

    // The host's values of the constants the handlers above receive
    static readonly UTIME_NOW: number;
    static readonly UTIME_OMIT: number;
    static readonly F_GETLK: number;
    static readonly F_SETLK: number;
    static readonly F_SETLKW: number;
    static readonly F_RDLCK: number;
    static readonly F_WRLCK: number;
    static readonly F_UNLCK: number;
    static readonly SEEK_SET: number;
    static readonly LOCK_SH: number;
    static readonly LOCK_EX: number;
    static readonly LOCK_UN: number;
    static readonly LOCK_NB: number;
    static readonly FALLOC_FL_KEEP_SIZE: number;
    static readonly FALLOC_FL_PUNCH_HOLE: number;
    static readonly FALLOC_FL_ZERO_RANGE: number;
  }
  export type {
    Callback,
    Caller,
    FallocateHandler,
    FileLock,
    FlockHandler,
    FuseStat,
    LockHandler,
    StatTime,
    Timespec,
    UtimensHandler,
  };
  export default Fuse;
}

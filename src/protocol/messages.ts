/** Wire shapes of requests and replies. Field names are short because every message carries them. */

/** A server-side handle: only meaningful to the instance and epoch that issued it. */
export interface ServerHandle {
  instance: string;
  epoch: string;
  handle: number;
  /** The instance reclaims the handle if its client is not heard from for this long: renew well within it. */
  leaseMs: number;
}

export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  dev: number;
  rdev: number;
  blksize: number;
  blocks: number;
  /** Times in whole milliseconds since the epoch (rounded down). */
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /**
   * The nanoseconds within each time's second (0-999,999,999), so times travel to the nanosecond:
   * the second is Math.floor(timeMs / 1000). Absent from servers before nanosecond times.
   */
  atimeNsec?: number;
  mtimeNsec?: number;
  ctimeNsec?: number;
}

/**
 * A time utimens sets: a point to the nanosecond (`nsec` within the second `sec`, which may be
 * negative), or utimensat(2)'s UTIME_NOW ("now": the server's clock) or UTIME_OMIT ("omit": left as
 * it is), carried as such because the permission rules differ for them.
 */
export type SetTime = { sec: number; nsec: number } | "now" | "omit";

/** Who a new file system object should belong to: the process that asked for it, when known. */
export interface Owner {
  uid: number;
  gid: number;
}

/** An open handle with the file's attributes as of the open, so the client needs no extra getattr. */
export interface OpenedHandle extends ServerHandle {
  stat: Stat;
  /**
   * The largest size a file may reach on the export's file system (its s_maxbytes, probed by the
   * server): a write at or past it fails with EFBIG, one across it is cut short, as on a local disk.
   * The client checks this itself, so such a write fails at once rather than from write-behind.
   * Absent: no limit announced.
   */
  maxFileSize?: number;
}

/** One directory entry with its attributes (like NFS READDIRPLUS); no stat when it vanished meanwhile. */
export interface DirEntry {
  name: string;
  stat?: Stat;
}

/**
 * One page of a directory listing; `next` is the offset of the following page, absent at the end.
 * A client must see `next` grow past the offset it asked for: a page that does not is malformed.
 */
export interface DirPage {
  entries: DirEntry[];
  next?: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/**
 * Arguments and results of each op in the op table. `caller` (and `owner` on the ops that make an
 * object) are the uid and gid of the process that made the call; the export's squash rule decides
 * what rights that gives (see src/server/permissions.ts).
 */
export interface OpTypes {
  getattr: { args: { path: string; caller?: Owner }; result: Stat };
  fgetattr: { args: { handle: number }; result: Stat };
  access: { args: { path: string; mode: number; caller?: Owner }; result: null };
  statfs: { args: { path: string; caller?: Owner }; result: StatFs };
  readlink: { args: { path: string; caller?: Owner }; result: string };
  getxattr: { args: { path: string; name: string; caller?: Owner }; result: Uint8Array };
  listxattr: { args: { path: string; caller?: Owner }; result: string[] };
  opendir: { args: { path: string; caller?: Owner }; result: ServerHandle };
  readdir: { args: { handle: number; offset: number }; result: DirPage };
  releasedir: { args: { handle: number }; result: null };
  open: { args: { path: string; flags: number; caller?: Owner }; result: OpenedHandle };
  openw: { args: { path: string; flags: number; caller?: Owner }; result: OpenedHandle };
  create: { args: { path: string; flags: number; mode: number; owner?: Owner }; result: OpenedHandle };
  read: { args: { handle: number; offset: number; length: number }; result: Uint8Array };
  write: { args: { handle: number; offset: number; data: Uint8Array }; result: number };
  fsync: { args: { handle: number; datasync: boolean }; result: null };
  /** fsync(2) of an open directory (a handle from opendir). */
  fsyncdir: { args: { handle: number; datasync: boolean }; result: null };
  release: { args: { handle: number }; result: null };
  /** Renews the lease of every handle the sending client holds on the instance that holds `handle`. */
  renew: { args: { handle: number }; result: null };
  ftruncate: { args: { handle: number; size: number }; result: null };
  truncate: { args: { path: string; size: number; caller?: Owner }; result: null };
  unlink: { args: { path: string; caller?: Owner }; result: null };
  rename: { args: { from: string; to: string; caller?: Owner }; result: null };
  mkdir: { args: { path: string; mode: number; owner?: Owner }; result: null };
  rmdir: { args: { path: string; caller?: Owner }; result: null };
  symlink: { args: { target: string; path: string; owner?: Owner }; result: null };
  link: { args: { from: string; to: string; caller?: Owner }; result: null };
  mknod: { args: { path: string; mode: number; rdev: number; owner?: Owner }; result: null };
  chmod: { args: { path: string; mode: number; caller?: Owner }; result: null };
  chown: { args: { path: string; uid: number; gid: number; caller?: Owner }; result: null };
  utimens: { args: { path: string; atime: SetTime; mtime: SetTime; caller?: Owner }; result: null };
  /** fallocate(2) on an open file; `mode` is 0 or FALLOC_FL_KEEP_SIZE, PUNCH_HOLE | KEEP_SIZE or ZERO_RANGE (| KEEP_SIZE). */
  fallocate: { args: { handle: number; mode: number; offset: number; length: number }; result: null };
  setxattr: { args: { path: string; name: string; value: Uint8Array; flags: number; caller?: Owner }; result: null };
  removexattr: { args: { path: string; name: string; caller?: Owner }; result: null };
}

export type OpArgs<O extends keyof OpTypes> = OpTypes[O]["args"];
export type OpResult<O extends keyof OpTypes> = OpTypes[O]["result"];

export interface Request<O extends keyof OpTypes = keyof OpTypes> {
  /** `<client id>:<sequence>`, the same on every retry of one call. */
  id: string;
  /**
   * Epoch ms after which the client has given up on this attempt: a server drops the request
   * unexecuted once it is past (checked on arrival and again right before touching the disk).
   */
  deadline: number;
  args: OpArgs<O>;
}

export interface Reply<R = unknown> {
  /** The id of the request this answers: a client accepts a reply only for a request it sent. */
  id: string;
  /** 0 or a Linux errno. */
  errno: number;
  /** Instance id and epoch of the server that answered. */
  instance: string;
  epoch: string;
  result?: R;
  /** Human-readable context for a failure (never a path outside the export). */
  message?: string;
  /** The request arrived damaged (its seal did not match) and was not acted on: send it again. */
  damaged?: boolean;
  /** The server was at its admission bounds and did not act on the request: back off and send it again. */
  busy?: boolean;
}

/** A server's answer to an export discovery request: what it serves that the asker is granted. */
export interface DiscoveryReply {
  instance: string;
  epoch: string;
  exports: { name: string; readOnly: boolean }[];
}

/**
 * Largest file data one read or write message carries. Leaves room for the envelope under NATS's
 * default 1 MiB max_payload; the FUSE kernel module sends at most 128 KiB per call anyway.
 */
export const MAX_DATA_BYTES = 512 * 1024;

/**
 * The only extended attribute namespace served: a root server must not let clients read or plant
 * security.*, trusted.* or system.* attributes. Other names do not exist as far as a client can tell.
 */
export const XATTR_NAMESPACE = "user.";

/** Linux limits the server enforces on every path it is given. */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;

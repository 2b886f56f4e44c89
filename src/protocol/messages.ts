/** Wire shapes of requests and replies. Field names are short because every message carries them. */

/** A server-side handle: only meaningful to the instance and epoch that issued it. */
export interface ServerHandle {
  instance: string;
  epoch: string;
  handle: number;
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
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** Who a new file system object should belong to: the process that asked for it, when known. */
export interface Owner {
  uid: number;
  gid: number;
}

/** One page of a directory listing; `next` is the offset of the following page, absent at the end. */
export interface DirPage {
  names: string[];
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

/** Arguments and results of each op in the op table. */
export interface OpTypes {
  getattr: { args: { path: string }; result: Stat };
  fgetattr: { args: { handle: number }; result: Stat };
  access: { args: { path: string; mode: number }; result: null };
  statfs: { args: { path: string }; result: StatFs };
  readlink: { args: { path: string }; result: string };
  getxattr: { args: { path: string; name: string }; result: Uint8Array };
  listxattr: { args: { path: string }; result: string[] };
  opendir: { args: { path: string }; result: ServerHandle };
  readdir: { args: { handle: number; offset: number }; result: DirPage };
  releasedir: { args: { handle: number }; result: null };
  open: { args: { path: string; flags: number }; result: ServerHandle };
  openw: { args: { path: string; flags: number }; result: ServerHandle };
  create: { args: { path: string; flags: number; mode: number; owner?: Owner }; result: ServerHandle };
  read: { args: { handle: number; offset: number; length: number }; result: Uint8Array };
  write: { args: { handle: number; offset: number; data: Uint8Array }; result: number };
  fsync: { args: { handle: number; datasync: boolean }; result: null };
  release: { args: { handle: number }; result: null };
  ftruncate: { args: { handle: number; size: number }; result: null };
  truncate: { args: { path: string; size: number }; result: null };
  unlink: { args: { path: string }; result: null };
  rename: { args: { from: string; to: string }; result: null };
  mkdir: { args: { path: string; mode: number; owner?: Owner }; result: null };
  rmdir: { args: { path: string }; result: null };
  symlink: { args: { target: string; path: string; owner?: Owner }; result: null };
  link: { args: { from: string; to: string }; result: null };
  mknod: { args: { path: string; mode: number; rdev: number; owner?: Owner }; result: null };
  chmod: { args: { path: string; mode: number }; result: null };
  chown: { args: { path: string; uid: number; gid: number }; result: null };
  utimens: { args: { path: string; atimeMs: number; mtimeMs: number }; result: null };
  setxattr: { args: { path: string; name: string; value: Uint8Array; flags: number }; result: null };
  removexattr: { args: { path: string; name: string }; result: null };
}

export type OpArgs<O extends keyof OpTypes> = OpTypes[O]["args"];
export type OpResult<O extends keyof OpTypes> = OpTypes[O]["result"];

export interface Request<O extends keyof OpTypes = keyof OpTypes> {
  /** `<client id>:<sequence>`, the same on every retry of one call. */
  id: string;
  args: OpArgs<O>;
}

export interface Reply<R = unknown> {
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

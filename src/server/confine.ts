import { close, constants, open } from "node:fs";
import { promisify } from "node:util";
import { FsError, ERRNO, NAME_MAX, PATH_MAX, errnoOf } from "../protocol/index.js";
import { RESOLVE_CONFINED, openat2 } from "./syscalls.js";

/**
 * Keeping every request inside its export root. The parent directory of a client path is opened in
 * one openat2(2) call relative to an fd of the export root, with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * | RESOLVE_NO_MAGICLINKS: the kernel refuses a symlink anywhere on the way and any step out of the
 * root within the lookup itself, so nothing can be swapped between a check and its use (design.md,
 * Security). The call runs on libuv's thread pool: however deep the path, the event loop only waits.
 */

/** Linux O_PATH (not in Node's constants): an fd that names an inode without opening it for I/O. */
export const O_PATH = 0o10000000;

const DIRECTORY_FLAGS = O_PATH | constants.O_DIRECTORY;

/** A path refused before touching the disk: counted and logged as a denial, not a plain failure. */
export class PathRefused extends FsError {}

/**
 * Splits a client path into its components, refusing anything that is not a plain path below the
 * export root: "/" is the root itself and gives no components.
 */
export function pathComponents(path: string): string[] {
  if (Buffer.byteLength(path) > PATH_MAX) throw new PathRefused(ERRNO.ENAMETOOLONG!, "path too long");
  if (path.includes("\0")) throw new PathRefused(ERRNO.EINVAL!, "path contains NUL");
  if (!path.startsWith("/")) throw new PathRefused(ERRNO.EINVAL!, "path must start with /");
  if (path === "/") return [];
  const components = path.slice(1).split("/");
  for (const name of components) {
    if (name === "") throw new PathRefused(ERRNO.EINVAL!, "empty path component");
    if (name === "..") throw new PathRefused(ERRNO.EACCES!, "path component .. is not allowed");
    if (name === ".") throw new PathRefused(ERRNO.EINVAL!, "path component . is not allowed");
    if (Buffer.byteLength(name) > NAME_MAX) throw new PathRefused(ERRNO.ENAMETOOLONG!, "path component too long");
  }
  return components;
}

/** The way into a directory fd (or the inode an O_PATH fd names) without openat(2). */
export function procPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** A resolved path: an open fd of its parent directory and the leaf name inside it. */
export interface Resolved {
  parentFd: number;
  /** "." for the export root itself, which has no parent inside the export. */
  leaf: string;
  /** `/proc/self/fd/<parentFd>/<leaf>`: acting on it never follows the leaf (use l* calls). */
  leafPath: string;
  isRoot: boolean;
}

/**
 * O_PATH fds of export roots, opened on first use and held for the life of the process: like an NFS
 * server, which serves an export's inode, an export stays the directory it was when first used even
 * if that is renamed or replaced later. The root itself is the administrator's choice and may be
 * reached through symlinks.
 */
const rootFds = new Map<string, Promise<number>>();

function rootFd(root: string): Promise<number> {
  let fd = rootFds.get(root);
  if (fd === undefined) {
    fd = openRaw(root, DIRECTORY_FLAGS);
    rootFds.set(root, fd);
    // A root that cannot be opened now is tried again on the next request.
    fd.catch(() => rootFds.delete(root));
  }
  return fd;
}

/** Opens `relative` (components joined by "/", or ".") below the root fd, following no symlink. */
async function openBeneath(rootFd: number, relative: string): Promise<number> {
  try {
    return await openat2(rootFd, relative, DIRECTORY_FLAGS, 0, RESOLVE_CONFINED);
  } catch (err) {
    // RESOLVE_NO_SYMLINKS fails a symlink anywhere on the way with ELOOP. RESOLVE_BENEATH fails a
    // way out with EXDEV, which pathComponents already makes unreachable (no "..", no absolute path).
    if (errnoOf(err) === ERRNO.ELOOP) throw new PathRefused(ERRNO.ELOOP!, "symlink in path");
    if (errnoOf(err) === ERRNO.EXDEV) throw new PathRefused(ERRNO.EACCES!, "path leads out of the export");
    throw err;
  }
}

/**
 * Opens the parent directory of `path` below `root` without following any symlink and runs `use`
 * on it; the fd is closed afterwards whatever happens.
 */
export async function withResolved<T>(root: string, path: string, use: (resolved: Resolved) => Promise<T>): Promise<T> {
  const components = pathComponents(path);
  // Only strings outlive the await: thousands of requests in flight must not each hold an array of
  // thousands of components.
  const leaf = components.at(-1) ?? ".";
  const isRoot = components.length === 0;
  const parent = components.length > 1 ? path.slice(1, path.lastIndexOf("/")) : ".";
  const parentFd = await openBeneath(await rootFd(root), parent);
  try {
    return await use({ parentFd, leaf, leafPath: procPath(parentFd, leaf), isRoot });
  } finally {
    await closeQuietly(parentFd);
  }
}

const openFd = promisify(open);
const closeFd = promisify(close);

/** open(2) returning a plain fd (a FileHandle would close itself on garbage collection). */
export function openRaw(path: string, flags: number, mode?: number): Promise<number> {
  return openFd(path, flags, mode);
}

export async function closeQuietly(fd: number): Promise<void> {
  await closeFd(fd).catch(() => undefined);
}

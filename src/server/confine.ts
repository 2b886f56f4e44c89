import { close, closeSync, constants, lstatSync, open, openSync } from "node:fs";
import { promisify } from "node:util";
import { FsError, ERRNO, NAME_MAX, PATH_MAX, errnoOf } from "../protocol/index.js";

/**
 * Keeping every request inside its export root. Node has no openat(2), so a path is walked one
 * component at a time from a directory fd through `/proc/self/fd/<dirfd>/<name>`, opening each
 * directory with O_NOFOLLOW | O_DIRECTORY: a symlink anywhere in the path is refused instead of
 * followed, and nothing can be swapped between a check and its use (design.md, Security).
 */

/** Linux O_PATH (not in Node's constants): an fd that names an inode without opening it for I/O. */
export const O_PATH = 0o10000000;

const WALK_FLAGS = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;

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
 * The walk opens O_PATH fds, which touch no data: done synchronously it costs microseconds, where a
 * trip through libuv's thread pool per component costs more than the request's own work.
 */
function openComponent(dirFd: number, name: string): number {
  try {
    return openSync(procPath(dirFd, name), WALK_FLAGS);
  } catch (err) {
    // A symlinked directory also fails with ENOTDIR; tell it apart so a client sees ELOOP.
    if (errnoOf(err) === ERRNO.ENOTDIR && lstatSync(procPath(dirFd, name), { throwIfNoEntry: false })?.isSymbolicLink()) {
      throw new PathRefused(ERRNO.ELOOP!, "symlink in path");
    }
    throw err;
  }
}

/**
 * Opens the parent directory of `path` below `root` without following any symlink and runs `use`
 * on it; the fd is closed afterwards whatever happens.
 */
export async function withResolved<T>(root: string, path: string, use: (resolved: Resolved) => Promise<T>): Promise<T> {
  const components = pathComponents(path);
  // The root itself is the administrator's choice and may be reached through symlinks.
  let fd = openSync(root, O_PATH | constants.O_DIRECTORY);
  try {
    for (const name of components.slice(0, -1)) {
      const next = openComponent(fd, name);
      closeSync(fd);
      fd = next;
    }
    const leaf = components.at(-1) ?? ".";
    return await use({ parentFd: fd, leaf, leafPath: procPath(fd, leaf), isRoot: components.length === 0 });
  } finally {
    closeSync(fd);
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

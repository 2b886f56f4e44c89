import {
  closeSync,
  constants,
  fchown as fchownCb,
  fdatasync as fdatasyncCb,
  fstat as fstatCb,
  fstatSync,
  openSync,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  read as readCb,
  write as writeCb,
  type BigIntStats,
  type Stats,
} from "node:fs";
import {
  access,
  chmod,
  chown,
  lchown,
  link,
  lstat,
  mkdir,
  readlink,
  rename,
  rmdir,
  statfs,
  symlink,
  truncate,
  unlink,
} from "node:fs/promises";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { promisify } from "node:util";
import { getAttribute, listAttributes, removeAttribute, setAttribute } from "fs-xattr";
import {
  CLIENT_OPEN_FLAGS,
  ERRNO,
  FsError,
  NAME_MAX,
  PATH_MAX,
  XATTR_NAMESPACE,
  errnoOf,
  opensForWrite,
  type OpArgs,
  type OpName,
  type OpResult,
  type Owner,
  type OpenedHandle,
  type ServerHandle,
  type SetTime,
} from "../protocol/index.js";
import type { ExportConfig, ServerOptions } from "./config.js";
import { O_PATH, closeQuietly, openRaw, pathComponents, procPath, withResolved, type Resolved } from "./confine.js";
import { probeMaxFileSize } from "./file-size-limit.js";
import {
  AT_FDCWD,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  UTIME_NOW,
  UTIME_OMIT,
  fallocate,
  mknodat,
  utimensat,
  type Timespec,
} from "./syscalls.js";
import { HandleTable, type EvictionReason, type HandleBudget, type HandleEntry } from "./handles.js";
import { DirectoryListing, toStat } from "./listing.js";
import type { ServerObserver } from "./observer.js";
import {
  MAY_READ,
  MAY_WRITE,
  checkAccess,
  checkChmod,
  checkChown,
  checkCreateIn,
  checkDelete,
  checkDeviceNode,
  checkLink,
  checkOpen,
  checkRename,
  checkSearch,
  checkTruncate,
  checkUserXattr,
  checkUtimens,
  chmodMode,
  credentialFor,
  newObjectOwner,
  type Credential,
  type Refusal,
} from "./permissions.js";

const fstat = promisify(fstatCb);
/** fstat with nanosecond times, for attributes sent to clients. */
function fstatNs(fd: number): Promise<BigIntStats> {
  return new Promise((resolve, reject) => fstatCb(fd, { bigint: true }, (err, stats) => (err ? reject(err) : resolve(stats))));
}
const fchown = promisify(fchownCb);
const fsync = promisify(fsyncCb);
const fdatasync = promisify(fdatasyncCb);
const ftruncate = promisify(ftruncateCb);
const pread = promisify(readCb);
const pwrite = promisify(writeCb);

/** Who is asking, as far as the export needs to know. */
export interface CallContext {
  identity: string;
  /** The client that sent the request (from its request id): handles are leased to it. */
  client: string;
  /** The export and the identity's grant both allow changes (mutating ops never get here otherwise). */
  writable: boolean;
  /** Epoch ms after which the client has given up on this request: nothing may be written after it. */
  deadline: number;
}

/**
 * Called right before a disk write: a request whose client has given up on it (and may already have
 * sent its retry elsewhere, and newer data after it) must not be applied. Exported for unit tests.
 */
export function checkDeadline(context: Pick<CallContext, "deadline">, now: number = Date.now()): void {
  if (now > context.deadline) throw new FsError(ERRNO.ETIMEDOUT!, "request past its deadline: the client has given up on it");
}

/** What an export needs from the service around it. */
export interface ExportHooks {
  budget: HandleBudget;
  handleEvicted(entry: HandleEntry, reason: EvictionReason): void;
}

type Handler<O extends OpName> = (args: OpArgs<O>, context: CallContext) => Promise<OpResult<O>>;

const PERMISSION_BITS = 0o7777;
/** setxattr(2) flags. */
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
/**
 * Only the user namespace is served: trusted.* and security.* (file capabilities!) set by a
 * client through a root server would grant privileges on the server's own disk.
 */
const XATTR_NAME_MAX = 255;

function fail(code: string, context: string): never {
  throw new FsError(ERRNO[code]!, context);
}

/** Directory levels the search-permission walk of a squashed request checks before it yields. */
const SEARCH_WALK_CHUNK = 128;

/** Throws the refusal a permission check gave, if any. */
function enforce(refusal: Refusal | undefined): void {
  if (refusal) fail(refusal.code, refusal.reason);
}

/** lstat, or undefined when there is no such entry. */
function lstatIfExists(path: string): Promise<Stats | undefined> {
  return lstat(path).catch((err) => (errnoOf(err) === ERRNO.ENOENT ? undefined : Promise.reject(err)));
}

/** An id of -1 (or its unsigned form) leaves that id unchanged, as in chown(2). */
function keepIfUnset(id: number): number {
  return id < 0 || id === 0xffffffff ? -1 : id;
}

/** The fallocate(2) modes served: allocate, keep the size, punch a hole, zero a range (what Linux file systems commonly support). */
const FALLOCATE_MODES: ReadonlySet<number> = new Set([
  0,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_ZERO_RANGE,
  FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
]);

/** A utimens time as utimensat(2) takes it. */
function kernelTime(time: SetTime): Timespec {
  if (time === "now") return { sec: 0, nsec: UTIME_NOW };
  if (time === "omit") return { sec: 0, nsec: UTIME_OMIT };
  return time;
}

/**
 * One exported directory, every op of the protocol on disk, confined to the export root.
 *
 * Squash: clients send the uid and gid of the calling process with every path op (our patched
 * fuse-native reports the caller). With squash "none" the server trusts them: it acts with its own
 * (root) rights and new objects get the caller's ids. With "root" and "all" each request runs as the
 * credential permissions.ts's credentialFor derives, and every op is checked against Linux's rules
 * for that credential on the fstat of the very inode it acts on (pinned, see withInode).
 */
export class ExportFs {
  readonly handles: HandleTable;
  private readonly handlers: { [O in OpName]: Handler<O> };
  /** Announced with every opened file (OpenedHandle.maxFileSize); probed once, at start. */
  private readonly maxFileSize: Promise<number | undefined>;

  constructor(
    readonly config: ExportConfig,
    private readonly server: { instance: string; epoch: string },
    private readonly options: ServerOptions,
    private readonly observer: ServerObserver,
    hooks: ExportHooks,
  ) {
    this.handles = new HandleTable(
      { perExport: options.maxHandlesPerExport, perIdentity: options.maxHandlesPerIdentity, bytesPerHandle: options.bytesPerHandle },
      hooks.budget,
      (count) => observer.openHandles(config.name, count),
      hooks.handleEvicted,
    );
    this.maxFileSize = probeMaxFileSize(config.path);
    this.handlers = {
      getattr: ({ path, caller }) => this.atAs(path, caller, async (r) => toStat(await lstat(r.leafPath, { bigint: true }))),
      fgetattr: ({ handle }, c) => this.withFd(handle, c, async (fd) => toStat(await fstatNs(fd))),
      access: ({ path, mode, caller }, c) => this.access(path, mode, caller, c),
      statfs: ({ path, caller }) => this.atAs(path, caller, (r) => this.withInode(r, (inode) => this.statfs(inode))),
      // As on Linux, reading a symlink needs no permission on the link itself.
      readlink: ({ path, caller }) => this.atAs(path, caller, (r) => readlink(r.leafPath, "utf8")),
      getxattr: ({ path, name, caller }) => this.getxattr(path, name, caller),
      listxattr: ({ path, caller }) => this.listxattr(path, caller),
      opendir: ({ path, caller }, c) => this.opendir(path, caller, c),
      readdir: ({ handle, offset }, c) => this.handles.use(handle, "dir", c.identity, (dir) => dir.listing.page(offset, this.options.maxListingBytes)),
      releasedir: async ({ handle }, c) => (await this.handles.remove(handle, "dir", c.identity), null),
      open: ({ path, flags, caller }, c) => {
        // `open` is the read-only op a read-only permission allows: it must not write, create or truncate.
        if (opensForWrite(flags) || (flags & (constants.O_CREAT | constants.O_EXCL)) !== 0) {
          fail("EACCES", "open asks for write access: use openw");
        }
        return this.openExisting(path, flags, caller, c);
      },
      // FUSE never passes O_CREAT or O_EXCL to open: creating is the create op's job.
      openw: ({ path, flags, caller }, c) => this.openExisting(path, flags & ~(constants.O_CREAT | constants.O_EXCL), caller, c),
      create: ({ path, flags, mode, owner }, c) => this.create(path, flags, mode, owner, c),
      read: ({ handle, offset, length }, c) => this.read(handle, offset, length, c),
      write: ({ handle, offset, data }, c) => this.write(handle, offset, data, c),
      fsync: ({ handle, datasync }, c) => this.withFd(handle, c, async (fd) => (await (datasync ? fdatasync(fd) : fsync(fd)), null)),
      fsyncdir: ({ handle, datasync }, c) => this.handles.use(handle, "dir", c.identity, (dir) => this.fsyncDirectory(dir.fd, datasync)),
      release: async ({ handle }, c) => (await this.handles.remove(handle, "file", c.identity), null),
      // The lease itself is renewed by the service for every request; this only checks the handle is still held.
      renew: async ({ handle }, c) => (this.handles.owner(handle, c.identity), null),
      ftruncate: ({ handle, size }, c) => this.withFd(handle, c, async (fd) => (checkDeadline(c), await ftruncate(fd, size), null)),
      fallocate: ({ handle, mode, offset, length }, c) =>
        this.withFd(handle, c, async (fd) => {
          if (!FALLOCATE_MODES.has(mode)) fail("EOPNOTSUPP", `fallocate mode ${mode.toString(16)} is not served`);
          checkDeadline(c);
          await fallocate(fd, mode, offset, length);
          return null;
        }),
      truncate: ({ path, size, caller }) =>
        this.atAs(path, caller, (r, who) =>
          this.withRegularInode(r, async (inode, stats) => {
            if (who) enforce(checkTruncate(who, stats));
            await truncate(inode, size);
            return null;
          }),
        ),
      unlink: ({ path, caller }) => this.atAs(path, caller, async (r, who) => (await unlink(await this.removable(r, who, "EISDIR")), null)),
      rename: ({ from, to, caller }) =>
        this.atAs(from, caller, (source, who) =>
          this.atAs(to, caller, async (target) => {
            const fromPath = this.notRoot(source, "EBUSY");
            const toPath = this.notRoot(target, "EBUSY");
            if (who) await this.mayRename(who, source, target);
            await rename(fromPath, toPath);
            return null;
          }),
        ),
      mkdir: ({ path, mode, owner }) =>
        this.atAs(path, owner, async (r, who) => {
          const leaf = this.notRoot(r, "EEXIST");
          const entryOwner = await this.newEntryOwner(r, who, owner);
          await mkdir(leaf, mode & PERMISSION_BITS);
          return this.ownNew(r, entryOwner);
        }),
      rmdir: ({ path, caller }) => this.atAs(path, caller, async (r, who) => (await rmdir(await this.removable(r, who, "EBUSY")), null)),
      symlink: ({ target, path, owner }) => this.symlink(target, path, owner),
      link: ({ from, to, caller }) =>
        this.atAs(from, caller, (source, who) =>
          this.atAs(to, caller, async (target) => {
            const fromPath = this.notRoot(source, "EPERM");
            const toPath = this.notRoot(target, "EEXIST");
            if (who) enforce(checkLink(who, await lstat(fromPath), await fstat(target.parentFd)));
            await link(fromPath, toPath);
            return null;
          }),
        ),
      mknod: ({ path, mode, rdev, owner }) => this.mknod(path, mode, rdev, owner),
      chmod: ({ path, mode, caller }) =>
        this.atAs(path, caller, (r, who) =>
          this.withInode(r, async (inode, stats) => {
            // Linux cannot change a symlink's mode either (fchmodat with AT_SYMLINK_NOFOLLOW).
            if (stats.isSymbolicLink()) fail("EOPNOTSUPP", "chmod of a symlink");
            if (who) enforce(checkChmod(who, stats));
            await chmod(inode, who ? chmodMode(who, stats, mode) : mode & PERMISSION_BITS);
            return null;
          }),
        ),
      chown: ({ path, uid, gid, caller }) => this.chown(path, uid, gid, caller),
      // Following the pinned inode's /proc path reaches a symlink itself, as AT_SYMLINK_NOFOLLOW would.
      utimens: ({ path, atime, mtime, caller }) =>
        this.atAs(path, caller, (r, who) =>
          this.withInode(r, async (inode, stats) => {
            if (who) enforce(checkUtimens(who, stats, { atime, mtime }));
            await utimensat(AT_FDCWD, inode, kernelTime(atime), kernelTime(mtime), true);
            return null;
          }),
        ),
      setxattr: ({ path, name, value, flags, caller }) => this.setxattr(path, name, value, flags, caller),
      removexattr: ({ path, name, caller }) =>
        this.atAs(path, caller, (r, who) =>
          this.withInode(r, async (inode, stats) => {
            this.checkXattrName(name);
            if (stats.isSymbolicLink()) fail("EPERM", "no user xattrs on symlinks");
            if (who) enforce(checkUserXattr(who, stats, MAY_WRITE));
            await removeAttribute(inode, name);
            return null;
          }),
        ),
    };
  }

  get name(): string {
    return this.config.name;
  }

  /** Runs one op; arguments have already been validated for shape, paths are checked here. */
  call<O extends OpName>(op: O, args: OpArgs<O>, context: CallContext): Promise<OpResult<O>> {
    return (this.handlers[op] as Handler<O>)(args, context);
  }

  async close(): Promise<void> {
    await this.handles.closeAll();
  }

  private at<T>(path: string, use: (resolved: Resolved) => Promise<T>): Promise<T> {
    return withResolved(this.config.path, path, use);
  }

  /**
   * Resolves `path` for a request from `caller` and hands `use` the credential it runs as (undefined
   * on a trusting export). As on Linux, a lookup needs search permission on every directory it
   * passes, from the export root down to the leaf's own; the export root itself is the
   * administrator's choice and always reachable.
   */
  private atAs<T>(path: string, caller: Owner | undefined, use: (resolved: Resolved, who: Credential | undefined) => Promise<T>): Promise<T> {
    const who = credentialFor(this.config, caller);
    return this.at(path, async (r) => {
      if (who && !r.isRoot) await this.checkSearchPath(r.parentFd, pathComponents(path).length - 1, who);
      return use(r, who);
    });
  }

  /**
   * The confined resolution runs with the server's rights, so search permission is checked here:
   * on the leaf's directory (`depth` levels below the root) and, walking up by "..", on each of its
   * ancestors up to the export root; on squashed exports only. The calls are synchronous on purpose:
   * an O_PATH open of a directory's ".." and an fstat of it touch no data and cost microseconds,
   * while a thread-pool trip per level would queue a deep path's thousands of calls among other
   * requests' disk I/O. A deep path yields to the event loop every SEARCH_WALK_CHUNK levels.
   */
  private async checkSearchPath(parentFd: number, depth: number, who: Credential): Promise<void> {
    let fd = parentFd;
    try {
      for (let level = depth; ; level--) {
        enforce(checkSearch(who, fstatSync(fd)));
        if (level === 0) return;
        if ((depth - level + 1) % SEARCH_WALK_CHUNK === 0) await yieldToEventLoop();
        const up = openSync(procPath(fd, ".."), O_PATH | constants.O_DIRECTORY);
        if (fd !== parentFd) closeSync(fd);
        fd = up;
      }
    } finally {
      if (fd !== parentFd) closeSync(fd);
    }
  }

  /**
   * Before adding a name to `resolved`'s directory: as `who`, that needs write and search permission
   * on it. Returns whom the new entry is to belong to.
   */
  private async newEntryOwner(resolved: Resolved, who: Credential | undefined, requested: Owner | undefined): Promise<Owner | undefined> {
    const parent = await fstat(resolved.parentFd);
    if (who) enforce(checkCreateIn(who, parent));
    return newObjectOwner(who, requested, parent);
  }

  /** The path of an entry `who` may remove from its directory (unlink, rmdir). */
  private async removable(resolved: Resolved, who: Credential | undefined, rootCode: string): Promise<string> {
    const leafPath = this.notRoot(resolved, rootCode);
    if (who) enforce(checkDelete(who, await fstat(resolved.parentFd), await lstat(leafPath)));
    return leafPath;
  }

  private async mayRename(who: Credential, source: Resolved, target: Resolved): Promise<void> {
    const [fromParent, toParent, sourceStats, targetStats] = await Promise.all([
      fstat(source.parentFd),
      fstat(target.parentFd),
      lstat(source.leafPath),
      lstatIfExists(target.leafPath),
    ]);
    const sameParent = fromParent.dev === toParent.dev && fromParent.ino === toParent.ino;
    enforce(checkRename(who, { fromParent, source: sourceStats, toParent, target: targetStats, sameParent }));
  }

  /** The export root has no name in a parent inside the export: ops that need one fail like the kernel's. */
  private notRoot(resolved: Resolved, code: string): string {
    if (resolved.isRoot) fail(code, "not allowed on the export root");
    return resolved.leafPath;
  }

  /**
   * Pins the leaf's inode with an O_PATH | O_NOFOLLOW fd and hands `use` a path to it
   * (`/proc/self/fd/<fd>`): calls that follow symlinks then reach exactly that inode, never a swap.
   */
  private async withInode<T>(resolved: Resolved, use: (inode: string, stats: Stats) => Promise<T>): Promise<T> {
    const fd = await openRaw(resolved.leafPath, O_PATH | constants.O_NOFOLLOW);
    try {
      return await use(procPath(fd), await fstat(fd));
    } finally {
      await closeQuietly(fd);
    }
  }

  private withRegularInode<T>(resolved: Resolved, use: (inode: string, stats: Stats) => Promise<T>): Promise<T> {
    return this.withInode(resolved, (inode, stats) => {
      if (stats.isSymbolicLink()) fail("ELOOP", "path is a symlink");
      if (stats.isDirectory()) fail("EISDIR", "path is a directory");
      if (!stats.isFile()) fail("EACCES", "not a regular file");
      return use(inode, stats);
    });
  }

  private withFd<T>(handle: number, context: CallContext, use: (fd: number) => Promise<T>): Promise<T> {
    return this.handles.use(handle, "file", context.identity, (entry) => use(entry.fd));
  }

  /** A directory handle's fd is O_PATH, which fsync refuses: the directory is opened for reading through it. */
  private async fsyncDirectory(dirFd: number, datasync: boolean): Promise<null> {
    const fd = await openRaw(procPath(dirFd), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await (datasync ? fdatasync(fd) : fsync(fd));
      return null;
    } finally {
      await closeQuietly(fd);
    }
  }

  private handleOf(handle: number): ServerHandle {
    return { instance: this.server.instance, epoch: this.server.epoch, handle, leaseMs: this.options.leaseMs };
  }

  private async access(path: string, mode: number, caller: Owner | undefined, context: CallContext): Promise<null> {
    if ((mode & constants.W_OK) !== 0 && !context.writable) fail("EROFS", "export is read-only for this identity");
    return this.atAs(path, caller, (r, who) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) {
          if (mode !== constants.F_OK) fail("ELOOP", "path is a symlink");
          return null;
        }
        if (who) enforce(checkAccess(who, stats, mode));
        else await access(inode, mode);
        return null;
      }),
    );
  }

  private async statfs(inode: string) {
    const s = await statfs(inode);
    return {
      bsize: s.bsize,
      frsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      favail: s.ffree,
      namemax: NAME_MAX,
    };
  }

  private checkXattrName(name: string): void {
    if (name.length === 0 || name.includes("\0")) fail("EINVAL", "bad xattr name");
    if (Buffer.byteLength(name) > XATTR_NAME_MAX) fail("ERANGE", "xattr name too long");
    if (!name.startsWith(XATTR_NAMESPACE)) fail("EOPNOTSUPP", "only user.* xattrs are served");
  }

  private getxattr(path: string, name: string, caller: Owner | undefined): Promise<Uint8Array> {
    return this.atAs(path, caller, (r, who) =>
      this.withInode(r, async (inode, stats) => {
        // Attributes outside user.* are not served, so as far as a client can tell they do not exist.
        if (!name.startsWith(XATTR_NAMESPACE) || stats.isSymbolicLink()) fail("ENODATA", "no such attribute");
        this.checkXattrName(name);
        if (who) enforce(checkUserXattr(who, stats, MAY_READ));
        return new Uint8Array(await getAttribute(inode, name));
      }),
    );
  }

  /** As on Linux, listing attribute names needs no permission on the object. */
  private listxattr(path: string, caller: Owner | undefined): Promise<string[]> {
    return this.atAs(path, caller, (r) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) return [];
        return (await listAttributes(inode)).filter((name) => name.startsWith(XATTR_NAMESPACE));
      }),
    );
  }

  private setxattr(path: string, name: string, value: Uint8Array, flags: number, caller: Owner | undefined): Promise<null> {
    this.checkXattrName(name);
    return this.atAs(path, caller, (r, who) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) fail("EPERM", "no user xattrs on symlinks");
        if (who) enforce(checkUserXattr(who, stats, MAY_WRITE));
        // fs-xattr has no flags argument: CREATE/REPLACE are checked first (not atomic with the set).
        if ((flags & (XATTR_CREATE | XATTR_REPLACE)) !== 0) {
          const exists = (await listAttributes(inode)).includes(name);
          if ((flags & XATTR_CREATE) !== 0 && exists) fail("EEXIST", "attribute exists");
          if ((flags & XATTR_REPLACE) !== 0 && !exists) fail("ENODATA", "no such attribute");
        }
        await setAttribute(inode, name, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        return null;
      }),
    );
  }

  private opendir(path: string, caller: Owner | undefined, context: CallContext): Promise<ServerHandle> {
    return this.atAs(path, caller, async (r, who) => {
      const fd = await openRaw(r.leafPath, O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((err) => {
        // The leaf may be a symlink (ENOTDIR with O_NOFOLLOW | O_DIRECTORY); say so.
        if (errnoOf(err) === ERRNO.ENOTDIR) {
          return lstat(r.leafPath).then((s) => (s.isSymbolicLink() ? fail("ELOOP", "path is a symlink") : Promise.reject(err)));
        }
        throw err;
      });
      try {
        if (who) enforce(checkAccess(who, await fstat(fd), MAY_READ));
        return this.handleOf(this.handles.add({ kind: "dir", fd, path, listing: new DirectoryListing(fd), identity: context.identity, client: context.client }));
      } catch (err) {
        await closeQuietly(fd);
        throw err;
      }
    });
  }

  /** Opens an existing regular file; the fd is re-opened from a pinned O_PATH fd so no swap can slip in. */
  private openExisting(path: string, flags: number, caller: Owner | undefined, context: CallContext): Promise<OpenedHandle> {
    const openFlags = flags & CLIENT_OPEN_FLAGS & ~(constants.O_CREAT | constants.O_EXCL);
    return this.atAs(path, caller, (r, who) =>
      this.withRegularInode(r, async (inode, stats) => {
        if (who) enforce(checkOpen(who, stats, openFlags));
        const fd = await openRaw(inode, openFlags);
        return this.register(fd, path, openFlags, context);
      }),
    );
  }

  private async create(path: string, flags: number, mode: number, requested: Owner | undefined, context: CallContext): Promise<OpenedHandle> {
    const openFlags = (flags & CLIENT_OPEN_FLAGS) | constants.O_CREAT;
    const exclusive = (openFlags & constants.O_EXCL) !== 0;
    const created = await this.atAs(path, requested, async (r, who) => {
      const leaf = this.notRoot(r, "EISDIR");
      const parent = await fstat(r.parentFd);
      const denied = who && checkCreateIn(who, parent);
      if (denied) {
        // Linux looks the name up first: an existing file is opened (or is EEXIST with O_EXCL) without
        // write permission on its directory.
        if ((await lstatIfExists(leaf)) === undefined) enforce(denied);
        if (exclusive) fail("EEXIST", "file exists");
        return undefined;
      }
      let fd: number;
      try {
        // Always exclusive on disk, so that squash applies only to files this call really created.
        fd = await openRaw(leaf, openFlags | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode & PERMISSION_BITS);
      } catch (err) {
        if (!exclusive && errnoOf(err) === ERRNO.EEXIST) return undefined;
        throw err;
      }
      try {
        const owner = newObjectOwner(who, requested, parent);
        if (owner) await fchown(fd, owner.uid, owner.gid);
        return this.register(fd, path, openFlags, context);
      } catch (err) {
        await closeQuietly(fd);
        throw err;
      }
    });
    return created ?? this.openExisting(path, flags, requested, context);
  }

  /** Adds an open fd to the handle table with the file's attributes, closing it if that fails. */
  private async register(fd: number, path: string, flags: number, context: CallContext): Promise<OpenedHandle> {
    try {
      const stat = toStat(await fstatNs(fd));
      const maxFileSize = await this.maxFileSize;
      const handle = this.handleOf(this.handles.add({ kind: "file", fd, path, flags, identity: context.identity, client: context.client }));
      return maxFileSize === undefined ? { ...handle, stat } : { ...handle, stat, maxFileSize };
    } catch (err) {
      await closeQuietly(fd);
      throw err;
    }
  }

  private read(handle: number, offset: number, length: number, context: CallContext): Promise<Uint8Array> {
    return this.withFd(handle, context, (fd) => this.readAt(fd, offset, length));
  }

  private async readAt(fd: number, offset: number, length: number): Promise<Uint8Array> {
    const buffer = Buffer.allocUnsafeSlow(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await pread(fd, buffer, filled, length - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    this.observer.bytesRead(this.name, filled);
    return buffer.subarray(0, filled);
  }

  /** pwrite at `offset` (handles never have O_APPEND: see CLIENT_OPEN_FLAGS). */
  private write(handle: number, offset: number, data: Uint8Array, context: CallContext): Promise<number> {
    return this.withFd(handle, context, (fd) => this.writeAt(fd, offset, data, context));
  }

  private async writeAt(fd: number, offset: number, data: Uint8Array, context: CallContext): Promise<number> {
    let written = 0;
    while (written < data.length) {
      checkDeadline(context);
      const { bytesWritten } = await pwrite(fd, data, written, data.length - written, offset + written);
      written += bytesWritten;
    }
    this.observer.bytesWritten(this.name, written);
    return written;
  }

  private symlink(target: string, path: string, owner: Owner | undefined): Promise<null> {
    // The target is opaque text for the client's kernel to resolve; the server never follows it.
    if (target.length === 0 || target.includes("\0")) fail("EINVAL", "bad symlink target");
    if (Buffer.byteLength(target) >= PATH_MAX) fail("ENAMETOOLONG", "symlink target too long");
    return this.atAs(path, owner, async (r, who) => {
      const leaf = this.notRoot(r, "EEXIST");
      const entryOwner = await this.newEntryOwner(r, who, owner);
      await symlink(target, leaf);
      return this.ownNew(r, entryOwner);
    });
  }

  private mknod(path: string, mode: number, rdev: number, owner: Owner | undefined): Promise<null> {
    const type = mode & constants.S_IFMT;
    const permissions = mode & PERMISSION_BITS;
    return this.atAs(path, owner, async (r, who) => {
      const leaf = this.notRoot(r, "EEXIST");
      const entryOwner = await this.newEntryOwner(r, who, owner);
      if (type === constants.S_IFIFO || type === constants.S_IFSOCK) {
        await mknodat(r.parentFd, r.leaf, type | permissions, 0);
      } else if (type === constants.S_IFBLK || type === constants.S_IFCHR) {
        enforce(checkDeviceNode(this.config.devices ?? false, who));
        await mknodat(r.parentFd, r.leaf, type | permissions, rdev);
      } else if (type === constants.S_IFREG || type === 0) {
        const fd = await openRaw(leaf, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, permissions);
        await closeQuietly(fd);
      } else {
        fail("EPERM", "only regular files, FIFOs, sockets and device nodes can be made");
      }
      return this.ownNew(r, entryOwner);
    });
  }

  /** Gives a just-created entry the owner decided before creating it (lchown: never follows); undefined: the server's own. */
  private async ownNew(resolved: Resolved, owner: Owner | undefined): Promise<null> {
    if (owner) await lchown(resolved.leafPath, owner.uid, owner.gid);
    return null;
  }

  /** chown on the pinned inode's /proc path changes a symlink itself, as lchown would. */
  private chown(path: string, uid: number, gid: number, caller: Owner | undefined): Promise<null> {
    const newUid = keepIfUnset(uid);
    const newGid = keepIfUnset(gid);
    return this.atAs(path, caller, (r, who) =>
      this.withInode(r, async (inode, stats) => {
        if (who) enforce(checkChown(who, stats, newUid, newGid));
        await chown(inode, newUid, newGid);
        return null;
      }),
    );
  }
}

import { execFile } from "node:child_process";
import {
  constants,
  fchown as fchownCb,
  fdatasync as fdatasyncCb,
  fstat as fstatCb,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  read as readCb,
  write as writeCb,
  type Stats,
} from "node:fs";
import {
  access,
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  readdir,
  readlink,
  rename,
  rmdir,
  statfs,
  symlink,
  truncate,
  unlink,
} from "node:fs/promises";
import { promisify } from "node:util";
import type { Logger } from "pino";
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
  type DirPage,
  type OpName,
  type OpResult,
  type Owner,
  type ServerHandle,
  type Stat,
} from "../protocol/index.js";
import type { ExportConfig, ServerOptions } from "./config.js";
import { O_PATH, closeQuietly, openRaw, procPath, withResolved, type Resolved } from "./confine.js";
import { HandleTable } from "./handles.js";
import type { ServerObserver } from "./observer.js";

const fstat = promisify(fstatCb);
const fchown = promisify(fchownCb);
const fsync = promisify(fsyncCb);
const fdatasync = promisify(fdatasyncCb);
const ftruncate = promisify(ftruncateCb);
const pread = promisify(readCb);
const pwrite = promisify(writeCb);
const execFileAsync = promisify(execFile);

/** Who is asking, as far as the export needs to know. */
export interface CallContext {
  identity: string;
  /** The export and the identity's grant both allow changes (mutating ops never get here otherwise). */
  writable: boolean;
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

function toStat(s: Stats): Stat {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    nlink: s.nlink,
    ino: s.ino,
    dev: s.dev,
    rdev: s.rdev,
    blksize: s.blksize,
    blocks: s.blocks,
    atimeMs: s.atimeMs,
    mtimeMs: s.mtimeMs,
    ctimeMs: s.ctimeMs,
  };
}

function fail(code: string, context: string): never {
  throw new FsError(ERRNO[code]!, context);
}

/** An id of -1 (or its unsigned form) leaves that id unchanged, as in chown(2). */
function keepIfUnset(id: number): number {
  return id < 0 || id === 0xffffffff ? -1 : id;
}

/**
 * Seconds for lutimes, which takes a double and truncates it to nanoseconds: 1400086400.122 s is
 * stored as .121999979 and would come back as 121 ms. Half a microsecond more (well above a double's
 * resolution at today's dates, well below a millisecond) makes the stored time read back as the
 * millisecond the client asked for. Exported for unit tests.
 */
export function utimeSeconds(ms: number): number {
  return (ms + 0.0005) / 1000;
}

/**
 * Maps the text mkfifo prints to an errno: the helper process reports failures only as text.
 * Exported for unit tests.
 */
export function mkfifoErrno(stderr: string): number {
  const known: [RegExp, string][] = [
    [/File exists/i, "EEXIST"],
    [/Permission denied/i, "EACCES"],
    [/No space left/i, "ENOSPC"],
    [/Read-only file system/i, "EROFS"],
    [/quota exceeded/i, "EDQUOT"],
    [/No such file or directory/i, "ENOENT"],
    [/Not a directory/i, "ENOTDIR"],
  ];
  const match = known.find(([pattern]) => pattern.test(stderr));
  return ERRNO[match?.[1] ?? "EIO"]!;
}

/**
 * The page of a directory listing that starts at `offset` and holds at most `maxBytes` of names (but
 * always at least one, so a listing always makes progress).
 */
export function directoryPage(names: readonly string[], offset: number, maxBytes: number): DirPage {
  let end = offset;
  let bytes = 0;
  while (end < names.length) {
    bytes += Buffer.byteLength(names[end]!) + 8;
    if (bytes > maxBytes && end > offset) break;
    end += 1;
  }
  const page = names.slice(offset, end);
  return end < names.length ? { names: page, next: end } : { names: page };
}

/**
 * One exported directory, every op of the protocol on disk, confined to the export root.
 *
 * Ownership and squash: clients send the uid and gid of the process that creates an object (our
 * patched fuse-native reports the caller). With squash "none" the new object gets them (or stays the
 * server's own when a client does not say). With "root", ids 0 become anonUid/anonGid, for new objects
 * and chown alike, as NFS's root_squash. With "all", new objects belong to the anon ids and chown is
 * refused with EPERM.
 */
export class ExportFs {
  readonly handles: HandleTable;
  private readonly handlers: { [O in OpName]: Handler<O> };

  constructor(
    readonly config: ExportConfig,
    private readonly server: { instance: string; epoch: string },
    private readonly options: ServerOptions,
    private readonly observer: ServerObserver,
    logger: Logger,
  ) {
    this.handles = new HandleTable(
      options.maxHandlesPerExport,
      (count) => observer.openHandles(config.name, count),
      (entry) => logger.info({ export: config.name, path: entry.path, identity: entry.identity }, "closed the least recently used handle: table full"),
    );
    this.handlers = {
      getattr: ({ path }) => this.at(path, async (r) => toStat(await lstat(r.leafPath))),
      fgetattr: ({ handle }, c) => this.withFd(handle, c, async (fd) => toStat(await fstat(fd))),
      access: ({ path, mode }, c) => this.access(path, mode, c),
      statfs: ({ path }) => this.at(path, (r) => this.withInode(r, (inode) => this.statfs(inode))),
      readlink: ({ path }) => this.at(path, (r) => readlink(r.leafPath, "utf8")),
      getxattr: ({ path, name }) => this.getxattr(path, name),
      listxattr: ({ path }) => this.listxattr(path),
      opendir: ({ path }, c) => this.opendir(path, c),
      readdir: async ({ handle, offset }, c) => directoryPage(this.handles.get(handle, "dir", c.identity).names, offset, this.options.maxListingBytes),
      releasedir: async ({ handle }, c) => (await this.handles.remove(handle, "dir", c.identity), null),
      open: ({ path, flags }, c) => {
        // `open` is the read-only op a read-only permission allows: it must not write, create or truncate.
        if (opensForWrite(flags) || (flags & (constants.O_CREAT | constants.O_EXCL)) !== 0) {
          fail("EACCES", "open asks for write access: use openw");
        }
        return this.openExisting(path, flags, c);
      },
      // FUSE never passes O_CREAT or O_EXCL to open: creating is the create op's job.
      openw: ({ path, flags }, c) => this.openExisting(path, flags & ~(constants.O_CREAT | constants.O_EXCL), c),
      create: ({ path, flags, mode, owner }, c) => this.create(path, flags, mode, owner, c),
      read: ({ handle, offset, length }, c) => this.read(handle, offset, length, c),
      write: ({ handle, offset, data }, c) => this.write(handle, offset, data, c),
      fsync: ({ handle, datasync }, c) => this.withFd(handle, c, async (fd) => (await (datasync ? fdatasync(fd) : fsync(fd)), null)),
      release: async ({ handle }, c) => (await this.handles.remove(handle, "file", c.identity), null),
      ftruncate: ({ handle, size }, c) => this.withFd(handle, c, async (fd) => (await ftruncate(fd, size), null)),
      truncate: ({ path, size }) => this.at(path, (r) => this.withRegularInode(r, async (inode) => (await truncate(inode, size), null))),
      unlink: ({ path }) => this.at(path, async (r) => (await unlink(this.notRoot(r, "EISDIR")), null)),
      rename: ({ from, to }) =>
        this.at(from, (source) => this.at(to, async (target) => (await rename(this.notRoot(source, "EBUSY"), this.notRoot(target, "EBUSY")), null))),
      mkdir: ({ path, mode, owner }) =>
        this.at(path, async (r) => {
          await mkdir(this.notRoot(r, "EEXIST"), mode & PERMISSION_BITS);
          return this.ownNew(r, owner);
        }),
      rmdir: ({ path }) => this.at(path, async (r) => (await rmdir(this.notRoot(r, "EBUSY")), null)),
      symlink: ({ target, path, owner }) => this.symlink(target, path, owner),
      link: ({ from, to }) => this.at(from, (source) => this.at(to, async (target) => (await link(this.notRoot(source, "EPERM"), this.notRoot(target, "EEXIST")), null))),
      mknod: ({ path, mode, owner }) => this.mknod(path, mode, owner),
      chmod: ({ path, mode }) =>
        this.at(path, (r) =>
          this.withInode(r, async (inode, stats) => {
            // Linux cannot change a symlink's mode either (fchmodat with AT_SYMLINK_NOFOLLOW).
            if (stats.isSymbolicLink()) fail("EOPNOTSUPP", "chmod of a symlink");
            await chmod(inode, mode & PERMISSION_BITS);
            return null;
          }),
        ),
      chown: ({ path, uid, gid }) => this.chown(path, uid, gid),
      utimens: ({ path, atimeMs, mtimeMs }) => this.at(path, async (r) => (await lutimes(r.leafPath, utimeSeconds(atimeMs), utimeSeconds(mtimeMs)), null)),
      setxattr: ({ path, name, value, flags }) => this.setxattr(path, name, value, flags),
      removexattr: ({ path, name }) =>
        this.at(path, (r) =>
          this.withInode(r, async (inode, stats) => {
            this.checkXattrName(name);
            if (stats.isSymbolicLink()) fail("EPERM", "no user xattrs on symlinks");
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

  private handleOf(handle: number): ServerHandle {
    return { instance: this.server.instance, epoch: this.server.epoch, handle };
  }

  private async access(path: string, mode: number, context: CallContext): Promise<null> {
    if ((mode & constants.W_OK) !== 0 && !context.writable) fail("EROFS", "export is read-only for this identity");
    return this.at(path, (r) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) {
          if (mode !== constants.F_OK) fail("ELOOP", "path is a symlink");
          return null;
        }
        await access(inode, mode);
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

  private getxattr(path: string, name: string): Promise<Uint8Array> {
    return this.at(path, (r) =>
      this.withInode(r, async (inode, stats) => {
        // Attributes outside user.* are not served, so as far as a client can tell they do not exist.
        if (!name.startsWith(XATTR_NAMESPACE) || stats.isSymbolicLink()) fail("ENODATA", "no such attribute");
        this.checkXattrName(name);
        return new Uint8Array(await getAttribute(inode, name));
      }),
    );
  }

  private listxattr(path: string): Promise<string[]> {
    return this.at(path, (r) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) return [];
        return (await listAttributes(inode)).filter((name) => name.startsWith(XATTR_NAMESPACE));
      }),
    );
  }

  private setxattr(path: string, name: string, value: Uint8Array, flags: number): Promise<null> {
    this.checkXattrName(name);
    return this.at(path, (r) =>
      this.withInode(r, async (inode, stats) => {
        if (stats.isSymbolicLink()) fail("EPERM", "no user xattrs on symlinks");
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

  private opendir(path: string, context: CallContext): Promise<ServerHandle> {
    return this.at(path, async (r) => {
      const fd = await openRaw(r.leafPath, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((err) => {
        // The leaf may be a symlink (ENOTDIR with O_NOFOLLOW | O_DIRECTORY); say so.
        if (errnoOf(err) === ERRNO.ENOTDIR) {
          return lstat(r.leafPath).then((s) => (s.isSymbolicLink() ? fail("ELOOP", "path is a symlink") : Promise.reject(err)));
        }
        throw err;
      });
      try {
        const names = [".", "..", ...(await readdir(procPath(fd)))];
        return this.handleOf(this.handles.add({ kind: "dir", path, names, identity: context.identity }));
      } finally {
        await closeQuietly(fd);
      }
    });
  }

  /** Opens an existing regular file; the fd is re-opened from a pinned O_PATH fd so no swap can slip in. */
  private openExisting(path: string, flags: number, context: CallContext): Promise<ServerHandle> {
    const openFlags = flags & CLIENT_OPEN_FLAGS & ~(constants.O_CREAT | constants.O_EXCL);
    return this.at(path, (r) =>
      this.withRegularInode(r, async (inode) => {
        const fd = await openRaw(inode, openFlags);
        return this.register(fd, path, openFlags, context);
      }),
    );
  }

  private async create(path: string, flags: number, mode: number, requested: Owner | undefined, context: CallContext): Promise<ServerHandle> {
    const openFlags = (flags & CLIENT_OPEN_FLAGS) | constants.O_CREAT;
    const exclusive = (openFlags & constants.O_EXCL) !== 0;
    const created = await this.at(path, async (r) => {
      const leaf = this.notRoot(r, "EISDIR");
      let fd: number;
      try {
        // Always exclusive on disk, so that squash applies only to files this call really created.
        fd = await openRaw(leaf, openFlags | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode & PERMISSION_BITS);
      } catch (err) {
        if (!exclusive && errnoOf(err) === ERRNO.EEXIST) return undefined;
        throw err;
      }
      try {
        const owner = this.newOwner(requested);
        if (owner) await fchown(fd, owner.uid, owner.gid);
        return this.register(fd, path, openFlags, context);
      } catch (err) {
        await closeQuietly(fd);
        throw err;
      }
    });
    return created ?? this.openExisting(path, flags, context);
  }

  /** Adds an open fd to the handle table, closing it if the table is full. */
  private async register(fd: number, path: string, flags: number, context: CallContext): Promise<ServerHandle> {
    try {
      return this.handleOf(this.handles.add({ kind: "file", fd, path, flags, identity: context.identity }));
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
    return this.withFd(handle, context, (fd) => this.writeAt(fd, offset, data));
  }

  private async writeAt(fd: number, offset: number, data: Uint8Array): Promise<number> {
    let written = 0;
    while (written < data.length) {
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
    return this.at(path, async (r) => {
      await symlink(target, this.notRoot(r, "EEXIST"));
      return this.ownNew(r, owner);
    });
  }

  private mknod(path: string, mode: number, owner: Owner | undefined): Promise<null> {
    const type = mode & constants.S_IFMT;
    const permissions = mode & PERMISSION_BITS;
    return this.at(path, async (r) => {
      const leaf = this.notRoot(r, "EEXIST");
      if (type === constants.S_IFIFO) {
        await this.mkfifo(r, permissions);
      } else if (type === constants.S_IFREG || type === 0) {
        const fd = await openRaw(leaf, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, permissions);
        await closeQuietly(fd);
      } else {
        fail("EPERM", "only regular files and FIFOs can be made");
      }
      return this.ownNew(r, owner);
    });
  }

  /**
   * Node has no mknod: mkfifo(1) makes the FIFO through this process's fd of the parent directory
   * (`/proc/<server pid>/fd/<dirfd>/<leaf>`: `self` would be mkfifo's own process).
   */
  private async mkfifo(resolved: Resolved, permissions: number): Promise<void> {
    const target = `/proc/${process.pid}/fd/${resolved.parentFd}/${resolved.leaf}`;
    try {
      await execFileAsync("mkfifo", ["-m", permissions.toString(8), "--", target], { timeout: this.options.mknodTimeoutMs });
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "");
      throw new FsError(mkfifoErrno(stderr), "mkfifo failed");
    }
  }

  /** Who a new object belongs to under this export's squash rule; undefined: the server's own user. */
  private newOwner(requested: Owner | undefined): Owner | undefined {
    const { squash, anonUid, anonGid } = this.config;
    if (squash === "all") return { uid: anonUid, gid: anonGid };
    if (squash === "root") {
      if (requested === undefined) return { uid: anonUid, gid: anonGid };
      return { uid: requested.uid === 0 ? anonUid : requested.uid, gid: requested.gid === 0 ? anonGid : requested.gid };
    }
    return requested;
  }

  /** Gives a just-created entry its owner (lchown: never follows). */
  private async ownNew(resolved: Resolved, requested: Owner | undefined): Promise<null> {
    const owner = this.newOwner(requested);
    if (owner) await lchown(resolved.leafPath, owner.uid, owner.gid);
    return null;
  }

  private chown(path: string, uid: number, gid: number): Promise<null> {
    const { squash, anonUid, anonGid } = this.config;
    if (squash === "all") fail("EPERM", "ownership is squashed on this export");
    let newUid = keepIfUnset(uid);
    let newGid = keepIfUnset(gid);
    if (squash === "root") {
      if (newUid === 0) newUid = anonUid;
      if (newGid === 0) newGid = anonGid;
    }
    return this.at(path, async (r) => (await lchown(r.leafPath, newUid, newGid), null));
  }
}

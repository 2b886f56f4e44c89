import { constants } from "node:fs";
import {
  ERRNO,
  FsError,
  fsError,
  opensForWrite,
  XATTR_NAMESPACE,
  type Change,
  type DirPage,
  type OpenedHandle,
  type Owner,
  type ServerHandle,
  type SetTime,
  type Stat,
  type StatFs,
} from "../protocol/index.js";
import { MemoryBudget } from "./budget.js";
import { DataCache } from "./data-cache.js";
import { ExportState, type ExportRpc } from "./export-state.js";
import { HandleTable, remapReason, type OpenHandle } from "./handle.js";
import { LeaseKeeper } from "./lease.js";
import { parentOf, type MetaEntry } from "./meta-cache.js";
import type { ClientObserver } from "./observer.js";
import type { ClientOptions } from "./options.js";
import { checkDirPage } from "./paging.js";
import { ReadAhead } from "./reader.js";
import { WriteBehind, writableLength } from "./writer.js";

type State = ExportState;
type Route = { state: State; path: string } | { root: true };

/**
 * The client's file system as the kernel sees it: paths and kernel handles in, calls on the pieces
 * out. Open handles and failover live in handle.ts, per-file state (size, data, write-behind) in
 * file-state.ts, names and attributes in meta-cache.ts, all under one memory budget (budget.ts) and
 * kept coherent by change notices (notices.ts). With one export the mount root is the export root;
 * with several, each export is a top-level folder.
 */
export class Vfs {
  readonly budget: MemoryBudget;
  readonly exports: ReadonlyMap<string, State>;
  private readonly data: DataCache;
  private readonly handles: HandleTable;
  private readonly leases: LeaseKeeper;
  private readonly mountedAt = Date.now();

  constructor(
    rpcs: readonly ExportRpc[],
    private readonly exportsAsFolders: boolean,
    private readonly observer: ClientObserver,
    private readonly options: ClientOptions,
  ) {
    if (rpcs.length === 0) throw new Error("nothing to mount");
    if (rpcs.length > 1 && !exportsAsFolders) throw new Error("several exports need exportsAsFolders");
    this.budget = new MemoryBudget(options.cacheSizeBytes, (kind, bytes) => observer.cacheBytes(kind, bytes));
    observer.cacheLimit(options.cacheSizeBytes);
    this.data = new DataCache(this.budget);
    this.exports = new Map(rpcs.map((rpc) => [rpc.exportName, new ExportState(rpc, this.budget, this.data, options.attrCacheMs)]));
    this.leases = new LeaseKeeper();
    this.handles = new HandleTable(this.leases, observer);
  }

  get openHandleCount(): number {
    return this.handles.size;
  }

  /** Stops renewing leases (the mount is going away). */
  shutdown(): void {
    this.leases.stop();
  }

  // ---- attributes and names ----

  /**
   * The kernel asks by path even for fstat(2). When the name is gone but this client holds the file
   * open (another client unlinked it), the open handle still answers, as a local file system would.
   */
  async getattr(path: string, caller?: Owner): Promise<Stat> {
    const route = this.route(path);
    if ("root" in route) return this.rootStat();
    const { state, path: p } = route;
    await this.settleWrites(state, p);
    const cached = state.meta.get(p);
    this.observer.cacheLookup("attr", cached !== undefined);
    if (cached !== undefined && "stat" in cached) return cached.stat;
    const relisted = cached === undefined ? await this.relisted(state, p, caller) : undefined;
    if (relisted !== undefined && "stat" in relisted) return relisted.stat;
    try {
      if (cached !== undefined || relisted !== undefined) throw fsError("ENOENT", `no ${path}`);
      const stat = await state.rpc.call("getattr", { path: p, caller });
      this.learned(state, p, stat);
      return stat;
    } catch (err) {
      if (!(err instanceof FsError) || err.errno !== ERRNO.ENOENT) throw err;
      if (cached === undefined) state.meta.putMissing(p);
      const open = this.handles.withPath(state, p).find((h) => h.kind === "file");
      if (!open) throw err;
      return this.fgetattr(open.fh, path, caller);
    }
  }

  /**
   * fstat(2) of an open file asks its handle, so a file another client unlinked or renamed still
   * answers; a directory handle, or none, falls back to the path.
   */
  async fgetattr(fh: number, path: string, caller?: Owner): Promise<Stat> {
    const handle = this.handles.get(fh);
    if (!handle?.file) return this.getattr(path, caller);
    await handle.file.writer?.settled();
    const stat = await this.handles.call(handle, "fgetattr", {});
    handle.file.observe(stat);
    return stat;
  }

  /** Permissions are the server's to decide on every call. */
  async access(path: string, mode: number, caller?: Owner): Promise<void> {
    const route = this.route(path);
    if ("root" in route) return;
    await route.state.rpc.call("access", { path: route.path, mode, caller });
  }

  async statfs(path: string, caller?: Owner): Promise<StatFs> {
    const route = this.route(path);
    if ("root" in route) return this.first().rpc.call("statfs", { path: "/" });
    return route.state.rpc.call("statfs", { path: route.path, caller });
  }

  async readlink(path: string, caller?: Owner): Promise<string> {
    const { state, path: p } = this.routeInExport(path);
    return state.rpc.call("readlink", { path: p, caller });
  }

  async mkdir(path: string, mode: number, owner?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("mkdir", { path: p, mode, owner }));
  }

  async rmdir(path: string, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p, tree: true }], () => state.rpc.call("rmdir", { path: p, caller }));
  }

  async unlink(path: string, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("unlink", { path: p, caller }));
  }

  async symlink(target: string, path: string, owner?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("symlink", { target, path: p, owner }));
  }

  async mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("mknod", { path: p, mode, rdev, owner }));
  }

  async rename(from: string, to: string, caller?: Owner): Promise<void> {
    const [source, target] = this.routePair(from, to);
    const { state } = source;
    await this.changing(
      state,
      [
        { path: source.path, tree: true },
        { path: target.path, tree: true },
      ],
      () => state.rpc.call("rename", { from: source.path, to: target.path, caller }),
    );
    this.handles.renamed(state, source.path, target.path);
  }

  async link(from: string, to: string, caller?: Owner): Promise<void> {
    const [source, target] = this.routePair(from, to);
    const { state } = source;
    await this.changing(state, [{ path: source.path }, { path: target.path }], () => state.rpc.call("link", { from: source.path, to: target.path, caller }));
  }

  async chmod(path: string, mode: number, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("chmod", { path: p, mode, caller }));
  }

  async chown(path: string, uid: number, gid: number, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("chown", { path: p, uid, gid, caller }));
  }

  /** Times to the nanosecond, "now" and "omit" passed on as such: the server's permission rules tell them apart. */
  async utimens(path: string, atime: SetTime, mtime: SetTime, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.settleWrites(state, p);
    await this.changing(state, [{ path: p }], () => state.rpc.call("utimens", { path: p, atime, mtime, caller }));
  }

  async truncate(path: string, size: number, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.settleWrites(state, p);
    const ino = state.meta.inoOf(p);
    await this.changing(state, [{ path: p }], () => state.rpc.call("truncate", { path: p, size, caller }));
    if (ino !== undefined) state.files.get(ino)?.invalidate(size);
  }

  async setxattr(path: string, name: string, value: Uint8Array, flags: number, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("setxattr", { path: p, name, value, flags, caller }));
  }

  /**
   * Names outside the served namespace are answered here: the kernel asks for security.capability
   * before every write(2), and the answer is always "no such attribute".
   */
  async getxattr(path: string, name: string, caller?: Owner): Promise<Uint8Array> {
    const route = this.route(path);
    if ("root" in route || !name.startsWith(XATTR_NAMESPACE)) throw fsError("ENODATA", `getxattr ${name} on ${path}`);
    return route.state.rpc.call("getxattr", { path: route.path, name, caller });
  }

  async listxattr(path: string, caller?: Owner): Promise<string[]> {
    const route = this.route(path);
    if ("root" in route) return [];
    return route.state.rpc.call("listxattr", { path: route.path, caller });
  }

  async removexattr(path: string, name: string, caller?: Owner): Promise<void> {
    const { state, path: p } = this.routeInExport(path);
    await this.changing(state, [{ path: p }], () => state.rpc.call("removexattr", { path: p, name, caller }));
  }

  // ---- directories ----

  async opendir(path: string, caller?: Owner): Promise<number> {
    const route = this.route(path);
    if ("root" in route) return 0;
    const server = await route.state.rpc.call("opendir", { path: route.path, caller });
    return this.handles.add({ kind: "dir", export: route.state, path: route.path, flags: 0, server, caller }).fh;
  }

  /**
   * fuse-native passes only the path to readdir: the newest open handle on it lists, or a listing of
   * its own. Every entry's attributes go into the cache (READDIRPLUS), so `ls -l` costs no more trips.
   */
  async readdir(path: string, caller?: Owner): Promise<string[]> {
    const route = this.route(path);
    if ("root" in route) return [".", "..", ...this.exports.keys()];
    const { state, path: p } = route;
    const open = this.handles.withPath(state, p).filter((h) => h.kind === "dir").pop();
    const entries = open
      ? await this.handles.run(open, (server) => this.listAll(state, p, server))
      : await this.listOnce(state, p, caller);
    return entries;
  }

  async releasedir(fh: number): Promise<void> {
    if (fh === 0) return;
    await this.close(fh, "releasedir");
  }

  // ---- files ----

  /** Close-to-open: the open answers with the file's attributes, which revalidate everything cached of it. */
  async open(path: string, flags: number, caller?: Owner): Promise<number> {
    const { state, path: p } = this.routeInExport(path);
    const opened = await state.rpc.call(opensForWrite(flags) ? "openw" : "open", { path: p, flags, caller });
    if ((flags & constants.O_TRUNC) !== 0) state.apply({ path: p });
    return this.opened(state, p, flags, opened, caller);
  }

  /**
   * fuse-native does not pass the open flags to create, and the kernel only calls it after a lookup
   * found no such name: create exclusively, and if another client won the race, open what it made.
   */
  async create(path: string, mode: number, owner?: Owner): Promise<number> {
    const { state, path: p } = this.routeInExport(path);
    const flags = constants.O_RDWR;
    let opened: OpenedHandle;
    try {
      opened = await this.changing(state, [{ path: p }], () =>
        state.rpc.call("create", { path: p, flags: flags | constants.O_CREAT | constants.O_EXCL, mode: mode & 0o7777, owner }),
      );
    } catch (err) {
      if (!(err instanceof FsError) || err.errno !== ERRNO.EEXIST) throw err;
      opened = await state.rpc.call("openw", { path: p, flags, caller: owner });
    }
    return this.opened(state, p, flags, opened, owner);
  }

  async read(fh: number, length: number, offset: number): Promise<Uint8Array> {
    const handle = this.fileHandle(fh);
    const file = handle.file!;
    // Read your own writes: what is queued lands first.
    if (file.writer && !file.writer.idle) await file.writer.settled();
    handle.reader ??= new ReadAhead(file, this.data, this.budget, (at, want) => this.readThrough(handle, at, want), {
      blockBytes: handle.export.rpc.maxDataBytes,
      maxAheadBlocks: this.options.readAheadMaxBlocks,
    });
    const data = await handle.reader.read(offset, length);
    this.observer.bytesRead(data.length);
    return data;
  }

  /**
   * Queues the write (write-behind). One past the export's announced file size limit fails here with
   * EFBIG, and one across it is cut short, as on a local disk. A failure of an earlier queued write is
   * reported by this one, after its data is queued (as NFS does).
   */
  async write(fh: number, data: Uint8Array, offset: number): Promise<number> {
    const handle = this.fileHandle(fh);
    const file = handle.file!;
    const { rpc, meta } = handle.export;
    data = data.subarray(0, writableLength(offset, data.length, handle.maxFileSize));
    file.writer ??= new WriteBehind<OpenHandle>((via, at, chunk) => this.writeThrough(via, at, chunk), this.budget, {
      maxMessageBytes: rpc.maxDataBytes,
      maxInFlight: this.options.writeBehindMaxInFlight,
      idleFlushMs: this.options.writeBehindIdleFlushMs,
    });
    try {
      await file.writer.write(handle, offset, data);
    } finally {
      file.wrote(offset, data.length, rpc.maxDataBytes);
      meta.inoChanged(file.ino);
    }
    return data.length;
  }

  async flush(fh: number): Promise<void> {
    await this.handles.get(fh)?.file?.writer?.drain();
  }

  /** A read-only handle has nothing of this client's to make durable (and a read-only grant may not ask). */
  async fsync(fh: number, datasync: boolean): Promise<void> {
    const handle = this.fileHandle(fh);
    await handle.file!.writer?.drain();
    if (!opensForWrite(handle.flags)) return;
    await this.handles.call(handle, "fsync", { datasync });
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const handle = this.fileHandle(fh);
    const file = handle.file!;
    await file.writer?.settled();
    await this.handles.call(handle, "ftruncate", { size });
    file.invalidate(size);
    handle.export.meta.inoChanged(file.ino);
  }

  /** fallocate(2): queued writes land first; the file's cached data and size are then stale. */
  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    const handle = this.fileHandle(fh);
    const file = handle.file!;
    await file.writer?.settled();
    try {
      await this.handles.call(handle, "fallocate", { mode, offset, length });
    } finally {
      file.invalidate();
      handle.export.meta.inoChanged(file.ino);
    }
  }

  /** fsync(2) of a directory; the mount root of several exports has nothing to make durable. */
  async fsyncdir(fh: number, datasync: boolean): Promise<void> {
    const handle = this.handles.get(fh);
    if (handle === undefined || handle.kind !== "dir") return;
    await this.handles.call(handle, "fsyncdir", { datasync });
  }

  async release(fh: number): Promise<void> {
    await this.close(fh, "release");
  }

  // ---- helpers ----

  private opened(state: State, path: string, flags: number, opened: OpenedHandle, caller: Owner | undefined): number {
    const { stat, maxFileSize, ...server } = opened;
    state.meta.put(path, stat);
    const file = state.files.opened(stat);
    return this.handles.add({ kind: "file", export: state, path, flags, server, caller, file, maxFileSize }).fh;
  }

  /** Attributes fresh from a server: cached, and checked against the file's cached data. */
  private learned(state: State, path: string, stat: Stat): void {
    state.meta.put(path, stat);
    state.files.get(stat.ino)?.observe(stat);
  }

  /** Runs a change and drops what it touches from this client's caches, whatever the outcome. */
  private async changing<T>(state: State, changes: Change[], change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } finally {
      for (const c of changes) state.apply(c);
    }
  }

  /** Reads a range from the server, in pieces that fit the bus; shorter only at the end of the file. */
  private async readThrough(handle: OpenHandle, offset: number, length: number): Promise<Uint8Array> {
    const { rpc } = handle.export;
    const chunk = rpc.maxDataBytes;
    const parts: Uint8Array[] = [];
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const want = Math.min(chunk, length - done);
      const part = await this.handles.call(handle, "read", { offset: at, length: want });
      parts.push(part);
      done += part.length;
      if (part.length < want) break; // end of file
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private async writeThrough(handle: OpenHandle, offset: number, data: Uint8Array): Promise<void> {
    const { rpc } = handle.export;
    let done = 0;
    while (done < data.length) {
      const chunk = data.subarray(done, done + rpc.maxDataBytes);
      const at = offset + done;
      const written = await this.handles.call(handle, "write", { offset: at, data: chunk });
      if (written <= 0) throw new FsError(ERRNO.EIO!, `write to ${handle.path} made no progress`);
      done += written;
    }
    this.observer.bytesWritten(data.length);
  }

  /** Every entry of an open directory, its attributes cached on the way. */
  private async listAll(state: State, dir: string, server: ServerHandle): Promise<string[]> {
    const names: string[] = [];
    let offset: number | undefined = 0;
    while (offset !== undefined) {
      const page: DirPage = await state.rpc.call("readdir", { handle: server.handle, offset }, { instance: server.instance });
      checkDirPage(page, offset, names.length, this.options.maxDirEntries);
      for (const { name, stat } of page.entries) {
        names.push(name);
        if (stat !== undefined && name !== "." && name !== "..") this.learned(state, childOf(dir, name), stat);
      }
      offset = page.next;
    }
    state.noteListing(dir, names.length);
    return names;
  }

  /**
   * What a fresh listing of the name's directory says of it, when that directory is large and was
   * listed lately (see ExportState.noteListing); undefined otherwise, or when listing fails.
   */
  private async relisted(state: State, path: string, caller: Owner | undefined): Promise<MetaEntry | undefined> {
    const dir = parentOf(path);
    if (path === "/" || !state.worthRelisting(dir)) return undefined;
    let listing = state.relisting.get(dir);
    if (listing === undefined) {
      listing = this.listOnce(state, dir, caller).finally(() => state.relisting.delete(dir));
      state.relisting.set(dir, listing);
    }
    const names = await listing.catch(() => undefined);
    if (names === undefined) return undefined;
    const entry = state.meta.get(path);
    if (entry !== undefined) return entry;
    // Listed but not cached (no room, or it vanished meanwhile): the server decides.
    if (names.includes(path.slice(path.lastIndexOf("/") + 1))) return undefined;
    state.meta.putMissing(path);
    return { missing: true };
  }

  /** A listing with a directory handle of its own, opened again elsewhere if its instance goes away. */
  private async listOnce(state: State, dir: string, caller: Owner | undefined): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      const server = await state.rpc.call("opendir", { path: dir, caller });
      try {
        return await this.listAll(state, dir, server);
      } catch (err) {
        if (remapReason(err) === undefined || attempt >= 5) throw err;
      } finally {
        void state.rpc.call("releasedir", { handle: server.handle }, { instance: server.instance }).catch(() => undefined);
      }
    }
  }

  private async close(fh: number, op: "release" | "releasedir"): Promise<void> {
    const handle = this.handles.get(fh);
    if (!handle) return;
    try {
      await handle.file?.writer?.drain();
    } finally {
      this.handles.remove(handle);
      if (handle.file) handle.export.files.closed(handle.file);
      // The kernel ignores release's answer and the data is already written: the server closes its
      // handle in the background (rpc.call retries). One that lost the handle has nothing left to close.
      void handle.export.rpc.call(op, { handle: handle.server.handle }, { instance: handle.server.instance }).catch(() => undefined);
    }
  }

  /** Makes queued writes to the file at `path` visible before its size or contents are asked for. */
  private async settleWrites(state: State, path: string): Promise<void> {
    const ino = state.meta.inoOf(path);
    const files = new Set(this.handles.withPath(state, path).map((h) => h.file));
    if (ino !== undefined) files.add(state.files.get(ino));
    const writers = [...files].flatMap((f) => (f?.writer && !f.writer.idle ? [f.writer] : []));
    if (writers.length > 0) await Promise.all(writers.map((w) => w.settled()));
  }

  private fileHandle(fh: number): OpenHandle {
    const handle = this.handles.get(fh);
    if (!handle?.file) throw fsError("EBADF", `no open file with handle ${fh}`);
    return handle;
  }

  private first(): State {
    return this.exports.values().next().value!;
  }

  private route(path: string): Route {
    if (!this.exportsAsFolders) return { state: this.first(), path };
    if (path === "/") return { root: true };
    const slash = path.indexOf("/", 1);
    const name = slash === -1 ? path.slice(1) : path.slice(1, slash);
    const state = this.exports.get(name);
    if (!state) throw fsError("ENOENT", `no export named ${name}`);
    return { state, path: slash === -1 ? "/" : path.slice(slash) };
  }

  /** Route of a path an op changes: the mount root and new names in it are not the exports' to change. */
  private routeInExport(path: string): { state: State; path: string } {
    if (this.exportsAsFolders && path.lastIndexOf("/") === 0 && !this.exports.has(path.slice(1))) {
      throw fsError("EPERM", "the mount root only holds the exports");
    }
    const route = this.route(path);
    if ("root" in route) throw fsError("EPERM", "the mount root lists exports and cannot be changed");
    return route;
  }

  private routePair(from: string, to: string): [{ state: State; path: string }, { state: State; path: string }] {
    const source = this.routeInExport(from);
    const target = this.routeInExport(to);
    if (source.state !== target.state) throw fsError("EXDEV", `${from} and ${to} are in different exports`);
    return [source, target];
  }

  private rootStat(): Stat {
    const now = this.mountedAt;
    return {
      mode: constants.S_IFDIR | 0o555,
      uid: 0,
      gid: 0,
      size: 4096,
      nlink: 2 + this.exports.size,
      ino: 1,
      dev: 0,
      rdev: 0,
      blksize: 4096,
      blocks: 8,
      atimeMs: now,
      mtimeMs: now,
      ctimeMs: now,
    };
  }
}

function childOf(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

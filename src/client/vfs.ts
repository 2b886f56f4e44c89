import { constants } from "node:fs";
import {
  ERRNO,
  FsError,
  fsError,
  opensForWrite,
  reopenFlags,
  XATTR_NAMESPACE,
  type DirPage,
  type Owner,
  type ServerHandle,
  type Stat,
  type StatFs,
} from "../protocol/index.js";
import { DirAttrCache } from "./dir-attrs.js";
import { HandleTable, type OpenFile } from "./handles.js";
import type { ClientObserver, FailoverReason } from "./observer.js";
import type { ClientOptions } from "./options.js";
import { InstanceGoneError, type Rpc } from "./rpc.js";
import { ReadAhead } from "./reader.js";
import { WriteBehind } from "./writer.js";

type Route = { rpc: Rpc; path: string } | { root: true };

/** A bound on re-opens for one op, so a file that keeps vanishing ends in an error, not a loop. */
const MAX_REMAPS_PER_OP = 5;

/**
 * The client's file system: paths and kernel handles in, RPCs out. Keeps kernel handle → server
 * handle, moves handles to another server instance when theirs is gone, and writes behind.
 * With one export the mount root is the export root; with several, each export is a top-level folder.
 */
export class Vfs {
  private readonly handles = new HandleTable();
  private readonly exports: Map<string, Rpc>;
  private readonly mountedAt = Date.now();
  private readonly dirAttrs: DirAttrCache;

  constructor(
    rpcs: readonly Rpc[],
    private readonly exportsAsFolders: boolean,
    private readonly observer: ClientObserver,
    private readonly options: ClientOptions,
  ) {
    if (rpcs.length === 0) throw new Error("nothing to mount");
    if (rpcs.length > 1 && !exportsAsFolders) throw new Error("several exports need exportsAsFolders");
    this.exports = new Map(rpcs.map((rpc) => [rpc.exportName, rpc]));
    this.dirAttrs = new DirAttrCache(options.dirAttrTtlMs);
  }

  get openHandleCount(): number {
    return this.handles.size;
  }

  // ---- attributes and names ----

  /**
   * The kernel asks by path even for fstat(2). When the name is gone but this client holds the file
   * open (another client unlinked it), the open handle still answers, as a local file system would.
   */
  async getattr(path: string): Promise<Stat> {
    const route = this.route(path);
    if ("root" in route) return this.rootStat();
    const cached = this.dirAttrs.get(path);
    if (cached) return cached;
    await this.settleWrites(route.rpc, route.path);
    try {
      const stat = await route.rpc.call("getattr", { path: route.path });
      this.dirAttrs.offer(path, stat);
      return stat;
    } catch (err) {
      const open = this.handles.withPath(route.rpc, route.path).find((f) => f.kind === "file");
      if (!(err instanceof FsError) || err.errno !== ERRNO.ENOENT || !open) throw err;
      return this.fgetattr(open.fh, path);
    }
  }

  /**
   * fstat(2) of an open file asks its handle, so a file another client unlinked or renamed still
   * answers; a directory handle, or none, falls back to the path.
   */
  async fgetattr(fh: number, path: string): Promise<Stat> {
    const file = this.handles.get(fh);
    if (!file || file.kind !== "file") return this.getattr(path);
    await file.writer?.settled();
    return this.onHandle(file, (server) => file.rpc.call("fgetattr", { handle: server.handle }, { instance: server.instance }));
  }

  async access(path: string, mode: number): Promise<void> {
    const route = this.route(path);
    if ("root" in route) return;
    await route.rpc.call("access", { path: route.path, mode });
  }

  async statfs(path: string): Promise<StatFs> {
    const route = this.route(path);
    if ("root" in route) return this.first().call("statfs", { path: "/" });
    return route.rpc.call("statfs", { path: route.path });
  }

  async readlink(path: string): Promise<string> {
    const { rpc, path: p } = this.routeInExport(path);
    return rpc.call("readlink", { path: p });
  }

  async mkdir(path: string, mode: number, owner?: Owner): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("mkdir", { path: p, mode, owner }));
  }

  async rmdir(path: string): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("rmdir", { path: p }));
  }

  async unlink(path: string): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("unlink", { path: p }));
  }

  async symlink(target: string, path: string, owner?: Owner): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("symlink", { target, path: p, owner }));
  }

  async mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("mknod", { path: p, mode, rdev, owner }));
  }

  async rename(from: string, to: string): Promise<void> {
    const [source, target] = this.routePair(from, to);
    await this.changing([from, to], () => source.rpc.call("rename", { from: source.path, to: target.path }));
    this.handles.renamed(source.rpc, source.path, target.path);
  }

  async link(from: string, to: string): Promise<void> {
    const [source, target] = this.routePair(from, to);
    await this.changing([to], () => source.rpc.call("link", { from: source.path, to: target.path }));
  }

  async chmod(path: string, mode: number): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("chmod", { path: p, mode }));
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("chown", { path: p, uid, gid }));
  }

  /** Times in ms; a negative time means "leave unchanged" (UTIME_OMIT). */
  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    if (atimeMs < 0 || mtimeMs < 0) {
      const current = await rpc.call("getattr", { path: p });
      if (atimeMs < 0) atimeMs = current.atimeMs;
      if (mtimeMs < 0) mtimeMs = current.mtimeMs;
    }
    await this.settleWrites(rpc, p);
    await this.changing([path], () => rpc.call("utimens", { path: p, atimeMs, mtimeMs }));
  }

  async truncate(path: string, size: number): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    this.dropReadAhead(rpc, p);
    await this.settleWrites(rpc, p);
    await rpc.call("truncate", { path: p, size });
  }

  async setxattr(path: string, name: string, value: Uint8Array, flags: number): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("setxattr", { path: p, name, value, flags }));
  }

  /**
   * Names outside the served namespace are answered here: the kernel asks for security.capability
   * before every write(2), and the answer is always "no such attribute".
   */
  async getxattr(path: string, name: string): Promise<Uint8Array> {
    const route = this.route(path);
    if ("root" in route || !name.startsWith(XATTR_NAMESPACE)) throw fsError("ENODATA", `getxattr ${name} on ${path}`);
    return route.rpc.call("getxattr", { path: route.path, name });
  }

  async listxattr(path: string): Promise<string[]> {
    const route = this.route(path);
    if ("root" in route) return [];
    return route.rpc.call("listxattr", { path: route.path });
  }

  async removexattr(path: string, name: string): Promise<void> {
    const { rpc, path: p } = this.routeInExport(path);
    await this.changing([path], () => rpc.call("removexattr", { path: p, name }));
  }

  // ---- directories ----

  async opendir(path: string): Promise<number> {
    const route = this.route(path);
    if ("root" in route) return 0;
    const server = await route.rpc.call("opendir", { path: route.path });
    return this.track({ kind: "dir", rpc: route.rpc, path: route.path, flags: 0, server });
  }

  /** fuse-native passes only the path to readdir: use the newest open handle on it, if any. */
  async readdir(path: string): Promise<string[]> {
    const route = this.route(path);
    if ("root" in route) return [".", "..", ...this.exports.keys()];
    const open = this.handles.withPath(route.rpc, route.path).filter((f) => f.kind === "dir").pop();
    if (open) return this.onHandle(open, (server) => listAll(route.rpc, server));
    const server = await route.rpc.call("opendir", { path: route.path });
    try {
      return await listAll(route.rpc, server);
    } finally {
      await route.rpc.call("releasedir", { handle: server.handle }, { instance: server.instance }).catch(() => undefined);
    }
  }

  async releasedir(fh: number): Promise<void> {
    if (fh === 0) return;
    await this.close(fh, "releasedir");
  }

  // ---- files ----

  async open(path: string, flags: number): Promise<number> {
    const { rpc, path: p } = this.routeInExport(path);
    const server = await rpc.call(opensForWrite(flags) ? "openw" : "open", { path: p, flags });
    return this.track({ kind: "file", rpc, path: p, flags, server });
  }

  /**
   * fuse-native does not pass the open flags to create, and the kernel only calls it after a lookup
   * found no such name: create exclusively, and if another client won the race, open what it made.
   */
  async create(path: string, mode: number, owner?: Owner): Promise<number> {
    const { rpc, path: p } = this.routeInExport(path);
    const flags = constants.O_RDWR;
    let server: ServerHandle;
    try {
      server = await this.changing([path], () => rpc.call("create", { path: p, flags: flags | constants.O_CREAT | constants.O_EXCL, mode: mode & 0o7777, owner }));
    } catch (err) {
      if (!(err instanceof FsError) || err.errno !== ERRNO.EEXIST) throw err;
      server = await rpc.call("openw", { path: p, flags });
    }
    return this.track({ kind: "file", rpc, path: p, flags, server });
  }

  async read(fh: number, length: number, offset: number): Promise<Uint8Array> {
    const file = this.file(fh);
    await this.settleWrites(file.rpc, file.path);
    file.reader ??= new ReadAhead((at, want) => this.readThrough(file, at, want), {
      blockBytes: Math.min(this.options.readAheadBlockBytes, file.rpc.maxDataBytes),
      maxAheadBlocks: this.options.readAheadMaxBlocks,
    });
    const data = await file.reader.read(offset, length);
    this.observer.bytesRead(data.length);
    return data;
  }

  /** Reads a range from the server, in pieces that fit the bus; shorter only at the end of the file. */
  private async readThrough(file: OpenFile, offset: number, length: number): Promise<Uint8Array> {
    const chunk = file.rpc.maxDataBytes;
    const parts: Uint8Array[] = [];
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const want = Math.min(chunk, length - done);
      const part = await this.onHandle(file, (server) => file.rpc.call("read", { handle: server.handle, offset: at, length: want }, { instance: server.instance }));
      parts.push(part);
      done += part.length;
      if (part.length < want) break; // end of file
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  async write(fh: number, data: Buffer, offset: number): Promise<number> {
    const file = this.file(fh);
    this.dropReadAhead(file.rpc, file.path);
    file.writer ??= new WriteBehind((at, chunk) => this.writeThrough(file, at, chunk), {
      maxInFlight: this.options.writeBehindMaxInFlight,
      maxBytes: this.options.writeBehindMaxBytes,
    });
    await file.writer.write(offset, data);
    return data.length;
  }

  async flush(fh: number): Promise<void> {
    const file = this.file(fh);
    await file.writer?.drain();
  }

  /** A read-only handle has nothing of this client's to make durable (and a read-only grant may not ask). */
  async fsync(fh: number, datasync: boolean): Promise<void> {
    const file = this.file(fh);
    await file.writer?.drain();
    if (!opensForWrite(file.flags)) return;
    await this.onHandle(file, (server) => file.rpc.call("fsync", { handle: server.handle, datasync }, { instance: server.instance }));
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const file = this.file(fh);
    this.dropReadAhead(file.rpc, file.path);
    await this.settleWrites(file.rpc, file.path);
    await this.onHandle(file, (server) => file.rpc.call("ftruncate", { handle: server.handle, size }, { instance: server.instance }));
  }

  async release(fh: number): Promise<void> {
    await this.close(fh, "release");
  }

  /** Runs a change to `paths` and drops the directory attributes it makes stale, whatever the outcome. */
  private async changing<T>(paths: string[], change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } finally {
      for (const path of paths) this.dirAttrs.changed(path);
    }
  }

  // ---- handle remapping ----

  /**
   * Runs a handle-bound op; when the handle's instance is gone or no longer knows the handle, re-opens
   * the file's current path on any instance, swaps in the new server handle and repeats the op.
   */
  private async onHandle<T>(file: OpenFile, op: (server: ServerHandle) => Promise<T>): Promise<T> {
    for (let remaps = 0; ; remaps++) {
      const server = file.server;
      try {
        return await op(server);
      } catch (err) {
        const reason = remapReason(err);
        if (reason === undefined || remaps >= MAX_REMAPS_PER_OP) throw err;
        if (file.server === server) await this.remap(file, reason);
        else await file.remapping;
      }
    }
  }

  private remap(file: OpenFile, reason: FailoverReason): Promise<void> {
    file.remapping ??= (async () => {
      this.observer.failover(reason);
      try {
        file.server =
          file.kind === "dir"
            ? await file.rpc.call("opendir", { path: file.path })
            : await file.rpc.call(opensForWrite(file.flags) ? "openw" : "open", { path: file.path, flags: reopenFlags(file.flags) });
        this.observer.remap("ok");
      } catch (err) {
        this.observer.remap("failed");
        throw new FsError(ERRNO.ESTALE!, `re-opening ${file.path} after a failover: ${(err as Error).message}`);
      }
    })().finally(() => {
      file.remapping = undefined;
    });
    return file.remapping;
  }

  private async writeThrough(file: OpenFile, offset: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const chunk = data.subarray(done, done + file.rpc.maxDataBytes);
      const written = await this.onHandle(file, (server) =>
        file.rpc.call("write", { handle: server.handle, offset: offset + done, data: chunk }, { instance: server.instance }),
      );
      if (written <= 0) throw new FsError(ERRNO.EIO!, `write to ${file.path} made no progress`);
      done += written;
    }
    this.observer.bytesWritten(data.length);
  }

  // ---- helpers ----

  private track(entry: Omit<OpenFile, "fh">): number {
    const file = this.handles.add(entry);
    this.observer.openHandles(this.handles.size);
    return file.fh;
  }

  private async close(fh: number, op: "release" | "releasedir"): Promise<void> {
    const file = this.handles.get(fh);
    if (!file) return;
    try {
      await file.writer?.drain();
    } finally {
      this.handles.remove(fh);
      this.observer.openHandles(this.handles.size);
      // The kernel ignores release's answer and the data is already written: the server closes its
      // handle in the background. One that lost the handle has nothing left to close.
      void file.rpc.call(op, { handle: file.server.handle }, { instance: file.server.instance }).catch(() => undefined);
    }
  }

  /** Data read ahead for `path` is stale once this client changes the file through any handle. */
  private dropReadAhead(rpc: Rpc, path: string): void {
    for (const file of this.handles.withPath(rpc, path)) file.reader?.invalidate();
  }

  /** Makes queued writes to `path` visible before its size or contents are asked for. */
  private async settleWrites(rpc: Rpc, path: string): Promise<void> {
    const writers = this.handles.withPath(rpc, path).flatMap((f) => (f.writer && !f.writer.idle ? [f.writer] : []));
    if (writers.length > 0) await Promise.all(writers.map((w) => w.settled()));
  }

  private file(fh: number): OpenFile {
    const file = this.handles.get(fh);
    if (!file) throw fsError("EBADF", `no open file with handle ${fh}`);
    return file;
  }

  private first(): Rpc {
    return this.exports.values().next().value!;
  }

  private route(path: string): Route {
    if (!this.exportsAsFolders) return { rpc: this.first(), path };
    if (path === "/") return { root: true };
    const slash = path.indexOf("/", 1);
    const name = slash === -1 ? path.slice(1) : path.slice(1, slash);
    const rpc = this.exports.get(name);
    if (!rpc) throw fsError("ENOENT", `no export named ${name}`);
    return { rpc, path: slash === -1 ? "/" : path.slice(slash) };
  }

  /** Route of a path an op changes: the mount root and new names in it are not the exports' to change. */
  private routeInExport(path: string): { rpc: Rpc; path: string } {
    if (this.exportsAsFolders && path.lastIndexOf("/") === 0 && !this.exports.has(path.slice(1))) {
      throw fsError("EPERM", "the mount root only holds the exports");
    }
    const route = this.route(path);
    if ("root" in route) throw fsError("EPERM", "the mount root lists exports and cannot be changed");
    return route;
  }

  private routePair(from: string, to: string): [{ rpc: Rpc; path: string }, { rpc: Rpc; path: string }] {
    const source = this.routeInExport(from);
    const target = this.routeInExport(to);
    if (source.rpc !== target.rpc) throw fsError("EXDEV", `${from} and ${to} are in different exports`);
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

/** Every name of an open directory, page by page. */
async function listAll(rpc: Rpc, server: ServerHandle): Promise<string[]> {
  const names: string[] = [];
  let offset: number | undefined = 0;
  while (offset !== undefined) {
    const page: DirPage = await rpc.call("readdir", { handle: server.handle, offset }, { instance: server.instance });
    names.push(...page.names);
    offset = page.next;
  }
  return names;
}

function remapReason(err: unknown): FailoverReason | undefined {
  if (err instanceof InstanceGoneError) return err.reason;
  if (err instanceof FsError && err.errno === ERRNO.ESTALE) return "stale_handle";
  return undefined;
}

import { ERRNO, FsError, OPS, opensForWrite, reopenFlags, type OpArgs, type OpName, type OpResult, type Owner, type ServerHandle } from "../protocol/index.js";
import type { ExportState } from "./export-state.js";
import type { FileState } from "./file-state.js";
import type { LeaseKeeper } from "./lease.js";
import type { ClientObserver, FailoverReason } from "./observer.js";
import type { ReadAhead } from "./reader.js";
import { InstanceGoneError, type Rpc } from "./rpc.js";

/** What the client keeps for each handle it gave the kernel (JuiceFS's handle). */
export interface OpenHandle {
  readonly fh: number;
  readonly kind: "file" | "dir";
  readonly export: ExportState;
  /** Path inside the export, kept current through renames so a re-open finds the file. */
  path: string;
  readonly flags: number;
  server: ServerHandle;
  /** The process that opened it: a re-open after a failover asks as that process. */
  readonly caller?: Owner;
  /** The file's shared state (files only). */
  readonly file?: FileState;
  /** The largest size the file may reach, as its server announced (OpenedHandle.maxFileSize). */
  readonly maxFileSize?: number;
  /** This handle's readahead session over the file's shared cache. */
  reader?: ReadAhead;
  /** Set while the handle is being moved to another instance, so concurrent ops wait for one re-open. */
  remapping?: Promise<void>;
}

/** Ops that take a server handle. */
type HandleOp = { [O in OpName]: OpArgs<O> extends { handle: number } ? O : never }[OpName];

/** A bound on re-opens for one op, so a file that keeps vanishing ends in an error, not a loop. */
const MAX_REMAPS_PER_OP = 5;

/**
 * Where `path` is after renaming `from` to `to`: the renamed entry itself or anything below it moves;
 * undefined when the rename does not touch it.
 */
export function pathAfterRename(path: string, from: string, to: string): string | undefined {
  if (path === from) return to;
  if (path.startsWith(from.endsWith("/") ? from : `${from}/`)) return to + path.slice(from.length);
  return undefined;
}

/**
 * Kernel handle numbers → open handles (small and reused, as the kernel expects), and handle-bound
 * calls: when a handle's instance is gone, every call in flight on it moves at once, and the handle is
 * re-opened on another instance once nothing sent to the old one can still land (fence.ts).
 */
export class HandleTable {
  private readonly handles = new Map<number, OpenHandle>();
  private readonly free: number[] = [];
  private nextFh = 1;
  /** Calls in flight per server instance, told at once when any call learns the instance is gone. */
  private readonly inFlight = new Map<string, Set<(gone: InstanceGoneError) => void>>();
  /**
   * Instances that answered with no responders: their process is gone, so a handle still on one moves
   * before its next call instead of sending it there first (each such attempt would be fenced anew).
   * An instance that opens a handle again is alive after all.
   */
  private readonly goneInstances = new Set<string>();

  constructor(
    private readonly leases: LeaseKeeper,
    private readonly observer: ClientObserver,
  ) {}

  get size(): number {
    return this.handles.size;
  }

  add(entry: Omit<OpenHandle, "fh">): OpenHandle {
    const fh = this.free.pop() ?? this.nextFh++;
    const handle: OpenHandle = { ...entry, fh };
    this.goneInstances.delete(handle.server.instance);
    this.handles.set(fh, handle);
    this.leases.opened(leaseKey(handle), handle.server);
    this.observer.openHandles(this.handles.size);
    return handle;
  }

  get(fh: number): OpenHandle | undefined {
    return this.handles.get(fh);
  }

  remove(handle: OpenHandle): void {
    if (this.handles.get(handle.fh) !== handle) return;
    this.handles.delete(handle.fh);
    this.free.push(handle.fh);
    this.leases.closed(leaseKey(handle), handle.server);
    this.observer.openHandles(this.handles.size);
  }

  /** Open handles of one export whose path is `path`. */
  withPath(state: ExportState, path: string): OpenHandle[] {
    return [...this.handles.values()].filter((h) => h.export === state && h.path === path);
  }

  /** Follows a rename in every open handle's path. */
  renamed(state: ExportState, from: string, to: string): void {
    for (const handle of this.handles.values()) {
      if (handle.export !== state) continue;
      const moved = pathAfterRename(handle.path, from, to);
      if (moved !== undefined) handle.path = moved;
    }
  }

  /**
   * Runs a handle-bound call; when the handle's instance is gone or no longer knows the handle,
   * re-opens the file's current path on any instance, swaps in the new server handle and repeats it.
   */
  async run<T>(handle: OpenHandle, call: (server: ServerHandle) => Promise<T>, abandonable = true): Promise<T> {
    for (let remaps = 0; ; remaps++) {
      const server = handle.server;
      try {
        if (this.goneInstances.has(server.instance)) throw new InstanceGoneError(server.instance, "no_responders");
        const work = call(server);
        return await (abandonable ? this.untilGone(server.instance, work) : work);
      } catch (err) {
        const reason = remapReason(err);
        if (reason === undefined || remaps >= MAX_REMAPS_PER_OP) throw err;
        if (err instanceof InstanceGoneError) this.gone(err);
        if (handle.server === server) await this.remap(handle, reason);
        else await handle.remapping;
      }
    }
  }

  /**
   * One handle-bound op through `run`. Only ops a late execution cannot harm (reads, fsync) are
   * abandoned when another call learns the instance is gone: a fenced op (a write) that was given up
   * on could still be re-sent to the old instance by its own retry after the handle has moved.
   */
  call<O extends HandleOp>(handle: OpenHandle, op: O, args: Omit<OpArgs<O>, "handle">): Promise<OpResult<O>> {
    const rpc = handle.export.rpc;
    return this.run(handle, (server) => rpc.call(op, { ...args, handle: server.handle } as OpArgs<O>, { instance: server.instance }), !OPS[op].fenced);
  }

  /** Settles like `work`, or fails as soon as another call learns that `instance` is gone. */
  private untilGone<T>(instance: string, work: Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      let waiting = this.inFlight.get(instance);
      if (waiting === undefined) this.inFlight.set(instance, (waiting = new Set()));
      const onGone = (gone: InstanceGoneError) => {
        // The abandoned attempt still counts for the fence: the re-open waits until it is dead.
        work.catch(() => undefined);
        reject(gone);
      };
      const done = () => {
        waiting.delete(onGone);
        if (waiting.size === 0 && this.inFlight.get(instance) === waiting) this.inFlight.delete(instance);
      };
      waiting.add(onGone);
      work.then(
        (value) => (done(), resolve(value)),
        (err: unknown) => (done(), reject(err)),
      );
    });
  }

  private gone(err: InstanceGoneError): void {
    if (err.reason === "no_responders" && !this.goneInstances.has(err.instance)) {
      this.goneInstances.add(err.instance);
      // Every handle on it moves now, idle ones too: the next call on each finds it ready (and a
      // reader served from the cache still has a live server handle for its release and lease).
      for (const handle of this.handles.values()) {
        if (handle.server.instance === err.instance) this.remap(handle, "no_responders").catch(() => undefined);
      }
    }
    const waiting = this.inFlight.get(err.instance);
    if (waiting === undefined) return;
    this.inFlight.delete(err.instance);
    for (const onGone of waiting) onGone(err);
  }

  private remap(handle: OpenHandle, reason: FailoverReason): Promise<void> {
    handle.remapping ??= (async () => {
      this.observer.failover(reason);
      const rpc = handle.export.rpc;
      // Nothing sent to the old instance may land after what is sent to the new one.
      await rpc.fenced(handle.server.instance);
      try {
        const old = handle.server;
        handle.server =
          handle.kind === "dir"
            ? await rpc.call("opendir", { path: handle.path, caller: handle.caller })
            : await rpc.call(opensForWrite(handle.flags) ? "openw" : "open", { path: handle.path, flags: reopenFlags(handle.flags), caller: handle.caller });
        this.leases.closed(leaseKey(handle), old);
        this.leases.opened(leaseKey(handle), handle.server);
        this.goneInstances.delete(handle.server.instance);
        this.observer.remap("ok");
      } catch (err) {
        this.observer.remap("failed");
        throw new FsError(ERRNO.ESTALE!, `re-opening ${handle.path} after a failover: ${(err as Error).message}`);
      }
    })().finally(() => {
      handle.remapping = undefined;
    });
    return handle.remapping;
  }
}

/** The lease keeper only keys on the RPC and sends it `renew`, which every ExportRpc can. */
function leaseKey(handle: OpenHandle): Rpc {
  return handle.export.rpc as Rpc;
}

export function remapReason(err: unknown): FailoverReason | undefined {
  if (err instanceof InstanceGoneError) return err.reason;
  if (err instanceof FsError && err.errno === ERRNO.ESTALE) return "stale_handle";
  return undefined;
}

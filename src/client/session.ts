import type { NatsConnection } from "nats";
import { ERRNO, FsError, RequestIds } from "../protocol/index.js";
import { BusLink } from "./bus-link.js";
import { InstanceFence } from "./fence.js";
import { KernelMount } from "./fuse-adapter.js";
import { followNotices } from "./notices.js";
import { NULL_CLIENT_OBSERVER, type ClientObserver } from "./observer.js";
import { DEFAULT_CLIENT_OPTIONS, type ClientOptions } from "./options.js";
import { Rpc } from "./rpc.js";
import { Vfs } from "./vfs.js";

export interface MountRequest {
  nc: NatsConnection;
  identity: string;
  /** Export names; with more than one, each appears as a folder of the mount root. */
  exports: string[];
  mountpoint: string;
  observer?: ClientObserver;
  options?: Partial<ClientOptions>;
  onUnexpectedError?: (op: string, err: unknown) => void;
  /** Prefix of this client's request ids (random when not given). */
  clientId?: string;
}

export interface MountedExports {
  readonly vfs: Vfs;
  readonly link: BusLink;
  /** Whether every export answers a getattr of its root within a couple of seconds. */
  probe(): Promise<{ ready: boolean; reason?: string }>;
  unmount(): Promise<void>;
}

/**
 * Checks that every export answers (so a typo or a missing grant fails the mount with a clear
 * message instead of a mount whose every op blocks), then mounts them.
 */
export async function mountExports(request: MountRequest): Promise<MountedExports> {
  const observer = request.observer ?? NULL_CLIENT_OBSERVER;
  const options = { ...DEFAULT_CLIENT_OPTIONS, ...request.options };
  const link = new BusLink(request.nc, observer);
  const ids = new RequestIds(request.clientId);
  const fence = new InstanceFence(options.clockSkewMs);
  const rpcs = request.exports.map((name) => new Rpc(request.nc, link, name, request.identity, ids, observer, options, fence));
  const probes = (softTimeoutMs: number) =>
    request.exports.map(
      (name) =>
        new Rpc(request.nc, link, name, request.identity, ids, NULL_CLIENT_OBSERVER, { ...options, softTimeoutMs, attemptTimeoutMs: Math.min(options.attemptTimeoutMs, softTimeoutMs) }, fence),
    );
  // The first contact is soft even on a hard mount: nothing is open yet that could be lost.
  for (const probe of probes(options.softTimeoutMs ?? 10_000)) {
    const name = probe.exportName;
    await probe.call("getattr", { path: "/" }).catch((err: unknown) => {
      const errno = err instanceof FsError ? err.errno : ERRNO.EIO;
      const why =
        errno === ERRNO.EACCES
          ? `identity "${request.identity}" has no grant for export "${name}"`
          : errno === ERRNO.EIO
            ? `no server answers for export "${name}" (is a server running and exporting it?)`
            : (err as Error).message;
      throw new Error(`cannot mount ${name}: ${why}`);
    });
  }
  const vfs = new Vfs(rpcs, request.exports.length > 1, observer, options);
  // Notices flow before the kernel sees the mount, so nothing is cached that a change could miss.
  const stopNotices = await followNotices(request.nc, [...vfs.exports.values()], ids.clientId, observer);
  const kernel = new KernelMount(vfs, {
    mountpoint: request.mountpoint,
    sourceName: `natsfs:${request.exports.join("+")}`,
    attrTimeoutS: options.attrTimeoutS,
    entryTimeoutS: options.entryTimeoutS,
    onUnexpectedError: request.onUnexpectedError ?? (() => undefined),
  });
  await kernel.mount();
  const readinessProbes = probes(2_000);
  const probe = async () => {
    for (const rpc of readinessProbes) {
      try {
        await rpc.call("getattr", { path: "/" });
      } catch (err) {
        return { ready: false, reason: `export ${rpc.exportName}: ${(err as Error).message}` };
      }
    }
    return { ready: true };
  };
  const unmount = async () => {
    await kernel.unmount();
    stopNotices();
    vfs.shutdown();
  };
  return { vfs, link, probe, unmount };
}

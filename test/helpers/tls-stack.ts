import { createHash } from "node:crypto";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getAttribute, listAttributes } from "fs-xattr";
import { connect, type NatsConnection, type NatsError } from "nats";
import { decode } from "@msgpack/msgpack";
import { SEAL_BYTES, decodeReply, encodeRequest, inboxPrefix, type Reply } from "../../src/protocol/index.js";
import { initCa, issue, parsePolicy, renderNatsConfig, tlsConnectOptions } from "../../src/security/index.js";
import { CLI, isFuseMounted, removeUnlessMounted, run, stopProcess, unmount, type CommandResult } from "./mount.js";
import { startNatsServer, type NatsServer } from "./nats.js";
import { start, waitFor, type Started } from "./processes.js";

/**
 * A complete mutual-TLS deployment for security tests: CA and certificates, a policy file, the
 * nats-server config rendered from it, one `natsfs server --policy` and any number of
 * `natsfs mount` processes, each as its own identity.
 *
 * Policy: exports `home` (alice rw, bob ro) and `secret` (alice only); carol is known to the bus
 * but has no grant at all.
 */

export const IDENTITIES = ["alice", "bob", "carol"] as const;
export type Identity = (typeof IDENTITIES)[number];
export const EXPORTS = ["home", "secret"] as const;
export type ExportName = (typeof EXPORTS)[number];

const TIMEOUTS = {
  /** A server starts in 1-2 s; 15 s was too short on a 2-core machine at load average 25. */
  serverReadyMs: 40_000,
  mountMs: 15_000,
  /** A mount that is expected to fail must give up within this. */
  refusedMountMs: 30_000,
} as const;

export type Squash = "none" | "root" | "all";

export function policyText(exportDirs: Record<ExportName, string>, squash: Partial<Record<ExportName, Squash>> = {}): string {
  const exportLine = (name: ExportName) => `{ path: ${JSON.stringify(exportDirs[name])}${squash[name] ? `, squash: ${squash[name]}` : ""} }`;
  return [
    "exports:",
    `  home:   ${exportLine("home")}`,
    `  secret: ${exportLine("secret")}`,
    "identities:",
    "  alice: { grants: { home: rw, secret: rw } }",
    "  bob:   { grants: { home: ro } }",
    "  carol: { grants: {} }",
    "servers: [fileserver]",
    "",
  ].join("\n");
}

/**
 * Adds publish subjects to one identity's allow list in a rendered nats-server config: a bus that
 * is laxer than the policy, to show the natsfs server enforces the policy on its own.
 */
export function widenPublish(config: string, identity: string, subjects: readonly string[]): string {
  const anchor = `user: "CN=${identity}"\n      permissions: {\n        publish: { allow: [\n`;
  if (!config.includes(anchor)) throw new Error(`widenPublish: no publish allow list for ${identity} in the rendered config`);
  return config.replace(anchor, `${anchor}${subjects.map((s) => `          ${JSON.stringify(s)}\n`).join("")}`);
}

export interface TlsStackOptions {
  /** nats-server max_payload in bytes (its default, 1 MiB, when undefined). */
  maxPayload?: number;
  /** Extra publish subjects per identity on the bus only (the natsfs server keeps the real policy). */
  widen?: Partial<Record<Identity, string[]>>;
  /** Squash rule per export (anon ids 65534); "none" when not given. */
  squash?: Partial<Record<ExportName, Squash>>;
  /** Extra `natsfs server` arguments (bounds, `--metrics-port`...). */
  serverArgs?: string[];
  /** The natsfs CLI that runs the server (default: this build's); an older build, to compare a fix with what it fixed. */
  serverCli?: string;
}

export interface TlsMount {
  identity: Identity;
  exportName: ExportName;
  mountpoint: string;
  proc: Started;
}

export interface TlsStack {
  /** Temp root (mode 0755) holding pki/, exports/, mounts and anything a test puts there. */
  root: string;
  pki: string;
  policyFile: string;
  natsConfig: string;
  nats: NatsServer;
  server: Started;
  /** Instance id the server announced (for `.<instance>` subjects). */
  instance: string;
  exportDirs: Record<ExportName, string>;
  /** `natsfs mount --foreground` as `identity`; resolves once the kernel shows the mount. */
  mount(identity: Identity, exportName: ExportName): Promise<TlsMount>;
  /** Runs `natsfs mount --foreground` expecting it to fail; resolves with how it ended. */
  refusedMount(identity: Identity, exportName: ExportName): Promise<CommandResult>;
  /** A raw NATS connection as `identity` (closed in teardown). */
  connectAs(identity: Identity | "fileserver"): Promise<NatsConnection>;
  logs(): string;
  teardown(): Promise<void>;
}

/** A well-formed request frame for hand-made requests, with a deadline a minute ahead. */
export function requestFrame(id: string, args: Record<string, unknown>, subject: string, deadline = Date.now() + 60_000): Uint8Array {
  return encodeRequest({ id, deadline, args } as never, subject);
}

/**
 * One raw natsfs request; resolves with the decoded reply or the NATS error code. `request` is either
 * the op's arguments (sent as a well-formed request sealed for `subject`, with a fresh id) or the exact
 * bytes to send (whose reply, the server not knowing or not reading their id, is accepted whatever
 * id it carries).
 */
export async function rawRequest<R = unknown>(
  nc: NatsConnection,
  subject: string,
  request: Record<string, unknown> | Uint8Array,
  timeoutMs = 10_000,
): Promise<{ reply: Reply<R> } | { code: string }> {
  const id = nextRequestId();
  const frame = request instanceof Uint8Array ? request : requestFrame(id, request, subject);
  try {
    const msg = await nc.request(subject, frame, { timeout: timeoutMs });
    if (request instanceof Uint8Array) return { reply: decodeAnyReply<R>(msg.data, msg.subject) };
    return { reply: decodeReply<R>(msg.data, msg.subject, id) };
  } catch (err) {
    const code = (err as NatsError).code;
    if (typeof code !== "string") throw err;
    return { code };
  }
}

/** Decodes a reply to hand-made bytes: it answers whatever id the server could read, if any. */
export function decodeAnyReply<R>(data: Uint8Array, subject: string): Reply<R> {
  const { id } = decode(data.subarray(0, data.length - SEAL_BYTES)) as { id?: unknown };
  return decodeReply<R>(data, subject, typeof id === "string" ? id : "");
}

let sequence = 0;
/** A fresh request id for hand-made requests. */
export function nextRequestId(): string {
  sequence += 1;
  return `security-test:${process.pid}:${sequence}`;
}

export async function startTlsStack(options: TlsStackOptions = {}): Promise<TlsStack> {
  const root = mkdtempSync(join(tmpdir(), "natsfs-tls-"));
  chmodSync(root, 0o755);
  const pki = join(root, "pki");
  initCa(pki);
  issue(pki, "nats", ["127.0.0.1", "localhost"]);
  for (const name of ["fileserver", ...IDENTITIES]) issue(pki, name);

  const exportDirs = {} as Record<ExportName, string>;
  for (const name of EXPORTS) {
    exportDirs[name] = join(root, "exports", name);
    mkdirSync(exportDirs[name], { recursive: true, mode: 0o755 });
  }
  const policyFile = join(root, "policy.yaml");
  const policy = policyText(exportDirs, options.squash);
  writeFileSync(policyFile, policy);
  let natsConfig = renderNatsConfig(parsePolicy(policy, policyFile), pki);
  for (const [identity, subjects] of Object.entries(options.widen ?? {})) natsConfig = widenPublish(natsConfig, identity, subjects);
  if (options.maxPayload !== undefined) natsConfig += `max_payload: ${options.maxPayload}\n`;
  writeFileSync(join(root, "nats.conf"), natsConfig);

  const mounts: TlsMount[] = [];
  const connections: NatsConnection[] = [];
  let nats: NatsServer | undefined;
  let server: Started | undefined;
  let tornDown = false;
  let mountpoints = 0;

  const logs = () =>
    [
      ...(nats ? [`--- nats-server ---\n${nats.output()}`] : []),
      ...(server ? [`--- natsfs server ---\n${server.output()}`] : []),
      ...mounts.map((m) => `--- natsfs mount (${m.identity} ${m.exportName}) ---\n${m.proc.output()}`),
    ].join("\n");

  const teardown = async () => {
    if (tornDown) return;
    tornDown = true;
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    for (const m of mounts) {
      await stopProcess(m.proc);
      await unmount(m.mountpoint);
    }
    if (server) await stopProcess(server);
    if (nats) await stopProcess(nats);
    removeUnlessMounted(root);
  };

  const busArgs = (identity: string) => ["--nats", nats!.url, "--pki", pki, "--identity", identity];
  const mountArgs = (identity: Identity, exportName: ExportName, mountpoint: string) => [
    CLI,
    "mount",
    ...busArgs(identity),
    "--export",
    exportName,
    mountpoint,
    "--foreground",
  ];
  const newMountpoint = (identity: Identity, exportName: ExportName) => {
    const mountpoint = join(root, "mnt", `${identity}-${exportName}-${++mountpoints}`);
    mkdirSync(mountpoint, { recursive: true, mode: 0o755 });
    return mountpoint;
  };

  const mount = async (identity: Identity, exportName: ExportName): Promise<TlsMount> => {
    const mountpoint = newMountpoint(identity, exportName);
    const proc = start(process.execPath, mountArgs(identity, exportName, mountpoint));
    const entry = { identity, exportName, mountpoint, proc };
    mounts.push(entry);
    const died = once(proc.child, "exit").then(() => {
      throw new Error(`natsfs mount as ${identity} exited before the mount was live`);
    });
    try {
      await Promise.race([waitFor(`mount of ${exportName} as ${identity}`, () => isFuseMounted(mountpoint), TIMEOUTS.mountMs), died]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${proc.output()}`);
    } finally {
      died.catch(() => undefined);
    }
    return entry;
  };

  const refusedMount = async (identity: Identity, exportName: ExportName): Promise<CommandResult> => {
    const mountpoint = newMountpoint(identity, exportName);
    try {
      return await run(process.execPath, mountArgs(identity, exportName, mountpoint), { timeoutMs: TIMEOUTS.refusedMountMs });
    } finally {
      await unmount(mountpoint);
    }
  };

  const connectAs = async (identity: Identity | "fileserver") => {
    // Not connectBus: a raw client must see permission errors itself, with no retries in between.
    const nc = await connect({ servers: nats!.url, tls: tlsConnectOptions(pki, identity), inboxPrefix: inboxPrefix(identity), reconnect: false, name: `test-${identity}` });
    connections.push(nc);
    return nc;
  };

  try {
    nats = await startNatsServer({ config: natsConfig, scheme: "tls" });
    server = start(process.execPath, [options.serverCli ?? CLI, "server", ...busArgs("fileserver"), "--policy", policyFile, ...(options.serverArgs ?? [])]);
    const announced = /serving \S+ as instance ([A-Za-z0-9_-]+)/;
    await waitFor("natsfs server to announce itself", () => announced.test(server!.output()) || server!.child.exitCode !== null, TIMEOUTS.serverReadyMs);
    const instance = announced.exec(server.output())?.[1];
    if (instance === undefined) throw new Error("natsfs server did not start");
    return { root, pki, policyFile, natsConfig, nats, server, instance, exportDirs, mount, refusedMount, connectAs, logs, teardown };
  } catch (err) {
    const output = logs();
    await teardown();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
}

export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** sha256 of a file's bytes, or a symlink's target. */
  content?: string;
  /** user.* extended attributes, name → sha256 of the value. */
  xattrs: Record<string, string>;
}

/** Every entry below `dir` (paths relative to it, "." for itself), never following symlinks. */
export async function snapshotTree(dir: string): Promise<Record<string, TreeEntry>> {
  const tree: Record<string, TreeEntry> = {};
  const visit = async (relative: string): Promise<void> => {
    const path = relative === "." ? dir : join(dir, relative);
    const stats = await lstat(path);
    const type = stats.isFile() ? "file" : stats.isDirectory() ? "dir" : stats.isSymbolicLink() ? "symlink" : "other";
    const digest = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
    const xattrs: Record<string, string> = {};
    if (type === "file" || type === "dir") {
      for (const name of await listAttributes(path)) xattrs[name] = digest(await getAttribute(path, name));
    }
    tree[relative] = {
      type,
      mode: stats.mode,
      uid: stats.uid,
      gid: stats.gid,
      size: stats.size,
      mtimeMs: stats.mtimeMs,
      content: type === "file" ? digest(await readFile(path)) : type === "symlink" ? await readlink(path) : undefined,
      xattrs,
    };
    if (type === "dir") {
      for (const name of (await readdir(path)).sort()) await visit(relative === "." ? name : join(relative, name));
    }
  };
  await visit(".");
  return tree;
}

/** Fails a promise that has not settled within `ms`, so that no test can hang on a stuck mount. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The error code an fs call failed with, or "ok". */
export async function outcome(promise: Promise<unknown>, what: string, ms = 20_000): Promise<string> {
  try {
    await within(ms, what, promise);
    return "ok";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    return code;
  }
}

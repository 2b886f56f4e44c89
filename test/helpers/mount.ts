import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { initCa, issue, loadPolicy, renderNatsConfig } from "../../src/security/index.js";
import { startNatsServer, type NatsServer } from "./nats.js";
import { start, waitFor, type Started } from "./processes.js";

/** The built CLI; tests run against dist/, so `make build` (or `npx tsc -p .`) comes first. */
/** The CLI under test: this tree's build, or another build (e.g. an old commit's, to see a test fail) from NATSFS_TEST_CLI. */
export const CLI = process.env.NATSFS_TEST_CLI ?? resolve(dirname(fileURLToPath(import.meta.url)), "../../dist/cli/main.js");

const TIMEOUTS = {
  /** From spawning `natsfs mount` until the kernel shows the mount. */
  mountMs: 15_000,
  /** One stat of a mountpoint: a hung FUSE daemon must not hang the test. */
  statMs: 2_000,
  /** fusermount and friends. */
  commandMs: 10_000,
  /** A child process to exit after SIGTERM, then again after SIGKILL. */
  stopMs: 5_000,
} as const;

export interface StackOptions {
  /** Export names; each gets its own empty directory. Default ["data"]; the first one is mounted. */
  exports?: string[];
  /**
   * true: plain NATS, `--insecure` everywhere. false: mutual TLS as deployed: a fresh CA in
   * root/pki, a policy (root/policy.yaml) serving every export as `fileserver` and granting
   * `clientGrant` on each to the mounting identity `tester`, and the nats-server config rendered from it.
   */
  insecure: boolean;
  /** Grant of the mounting identity on every export when insecure is false. Default "rw". */
  clientGrant?: "rw" | "ro";
  /** Export name → more policy fields for it when insecure is false (e.g. `{ devices: true, squash: "root" }`). */
  exportPolicies?: Record<string, Record<string, unknown>>;
  /** Extra nats-server configuration text. */
  natsConfig?: string;
  extraServerArgs?: string[];
  extraMountArgs?: string[];
  /** Mount the bus with `--all` instead of the first export. */
  mountAll?: boolean;
}

export interface Stack {
  /** Root temp directory holding export directories and the mountpoint (mode 0755). */
  root: string;
  nats: NatsServer;
  /** How natsfs processes join the bus (TLS material and identities, or --insecure). */
  bus: StackBus;
  /** Server processes, the first one started by startStack, more by startServer(). */
  servers: Started[];
  mount: Started;
  mountpoint: string;
  /** Export name → directory on the server's disk. */
  exportDirs: Record<string, string>;
  /** Directory of the mounted export on the server's disk (compare files against it). */
  exportDir: string;
  /** Starts one more server instance for the same exports (queue group, failover tests). */
  startServer(extraArgs?: string[]): Promise<Started>;
  /** All process output, for assertion messages. */
  logs(): string;
  /** Unmounts, stops every process the stack started, removes temp dirs. Never hangs; safe to call twice. */
  teardown(): Promise<void>;
}

/** Resolves with `promise`, or with `fallback` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion, killing it after `timeoutMs`. Never rejects on a non-zero exit. */
export function run(command: string, args: string[], options: { timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? TIMEOUTS.commandMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      rejectRun(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/**
 * Runs a command as another user with no supplementary groups (and, as uid != 0, no capabilities),
 * for permission tests. The paths it touches must be traversable by that user.
 */
export function runAs(uid: number, gid: number, command: string, args: string[], options: { timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<CommandResult> {
  return run("setpriv", [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", command, ...args], options);
}

/** Decodes the octal escapes /proc/mounts uses for spaces, tabs, newlines and backslashes. */
export function decodeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** FUSE mountpoints listed in /proc/mounts (type fuse, fuse.<subtype> or fuseblk). */
export function fuseMounts(): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter((fields) => fields.length >= 3 && /^fuse(blk)?(\.|$)/.test(fields[2]!))
    .map((fields) => decodeMountField(fields[1]!));
}

/** True when the kernel lists `mountpoint` as a FUSE mount and it is a different device from its parent. */
export async function isFuseMounted(mountpoint: string): Promise<boolean> {
  const path = resolve(mountpoint);
  if (!fuseMounts().includes(path)) return false;
  const devices = Promise.all([stat(path), stat(dirname(path))]).then(([own, parent]) => own.dev !== parent.dev);
  // A stat the daemon never answers must not hang the caller; an error (ENOTCONN) means not live.
  return within(devices.catch(() => false), TIMEOUTS.statMs, false);
}

/** Lazily detaches a mount (works even when its daemon is dead or hung); never throws or hangs. */
export async function unmount(mountpoint: string): Promise<void> {
  const path = resolve(mountpoint);
  if (!fuseMounts().includes(path)) return;
  const result = await run("fusermount", ["-uz", path]).catch(() => undefined);
  if (result?.code !== 0 && fuseMounts().includes(path)) await run("umount", ["-l", path]).catch(() => undefined);
}

/** Stops a started process: SIGTERM, then SIGKILL; gives up waiting after bounded time (a process stuck in D state). */
export async function stopProcess(proc: Started): Promise<void> {
  const stopped = proc.stop("SIGTERM").then(() => true, () => true);
  if (await within(stopped, TIMEOUTS.stopMs * 2 + 1_000, false)) return;
  proc.child.kill("SIGKILL");
}

/** How natsfs processes join a stack's bus: the flags after `--nats URL` for servers and mounts. */
export interface StackBus {
  url: string;
  serverArgs: string[];
  mountArgs: string[];
  /** PKI directory and policy file when the bus is TLS. */
  pki?: string;
  policyFile?: string;
}

const TLS_IDENTITIES = { nats: "nats", server: "fileserver", client: "tester" } as const;

/** Starts nats-server for a stack: plain, or mutual TLS with a fresh CA and a policy for the exports. */
async function startStackBus(root: string, exportDirs: Record<string, string>, options: StackOptions): Promise<{ nats: NatsServer; bus: StackBus }> {
  const exportArgs = Object.entries(exportDirs).flatMap(([name, dir]) => ["--export", `${name}=${dir}`]);
  if (options.insecure) {
    const nats = await startNatsServer({ config: options.natsConfig });
    return { nats, bus: { url: nats.url, serverArgs: ["--insecure", ...exportArgs], mountArgs: ["--insecure"] } };
  }
  const pki = join(root, "pki");
  initCa(pki);
  issue(pki, TLS_IDENTITIES.nats, ["127.0.0.1", "localhost"]);
  issue(pki, TLS_IDENTITIES.server);
  issue(pki, TLS_IDENTITIES.client);
  const grant = options.clientGrant ?? "rw";
  const policy = {
    exports: Object.fromEntries(Object.entries(exportDirs).map(([name, path]) => [name, { ...options.exportPolicies?.[name], path }])),
    identities: { [TLS_IDENTITIES.client]: { grants: Object.fromEntries(Object.keys(exportDirs).map((name) => [name, grant])) } },
    servers: [TLS_IDENTITIES.server],
  };
  const policyFile = join(root, "policy.json");
  writeFileSync(policyFile, JSON.stringify(policy, null, 2));
  const natsConfig = `${renderNatsConfig(loadPolicy(policyFile), pki, { certName: TLS_IDENTITIES.nats })}\n${options.natsConfig ?? ""}`;
  const nats = await startNatsServer({ config: natsConfig, scheme: "tls" });
  return {
    nats,
    bus: {
      url: nats.url,
      serverArgs: ["--pki", pki, "--identity", TLS_IDENTITIES.server, "--policy", policyFile],
      mountArgs: ["--pki", pki, "--identity", TLS_IDENTITIES.client],
      pki,
      policyFile,
    },
  };
}

/** Starts `natsfs server` on a stack's bus. */
export function startServerProcess(bus: StackBus, extraArgs: string[] = []): Started {
  return start(process.execPath, [CLI, "server", "--nats", bus.url, ...bus.serverArgs, ...extraArgs]);
}

/** Resolves when the process has exited (at once if it already has). */
function exited(proc: Started): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return Promise.resolve();
  return once(proc.child, "exit").then(() => undefined);
}

/**
 * Starts `natsfs mount --foreground` on a stack's bus for one export (or `--all` when `exportName` is
 * undefined) and waits until the kernel shows the mount; fails at once if the process exits first.
 */
export async function startMountProcess(bus: StackBus, exportName: string | undefined, mountpoint: string, extraArgs: string[] = []): Promise<Started> {
  const target = exportName === undefined ? ["--all"] : ["--export", exportName];
  const proc = start(process.execPath, [CLI, "mount", "--nats", bus.url, ...bus.mountArgs, ...target, mountpoint, "--foreground", ...extraArgs]);
  const died = exited(proc).then(() => {
    throw new Error(`natsfs mount exited (${proc.child.exitCode ?? proc.child.signalCode}) before the mount was live`);
  });
  try {
    await Promise.race([waitFor(`FUSE mount at ${mountpoint}`, () => isFuseMounted(mountpoint), TIMEOUTS.mountMs), died]);
  } catch (err) {
    await stopProcess(proc);
    await unmount(mountpoint);
    throw new Error(`${(err as Error).message}\n--- natsfs mount output ---\n${proc.output()}`);
  } finally {
    died.catch(() => undefined);
  }
  return proc;
}

/**
 * Starts nats-server, one `natsfs server` and one `natsfs mount`, and waits until the mount is live.
 * Always call `teardown()` (in `after`/`t.after`), even when a test fails.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const exportNames = options.exports ?? ["data"];
  const root = mkdtempSync(join(tmpdir(), "natsfs-stack-"));
  // Permission tests run as other users: they must be able to reach the mountpoint.
  chmodSync(root, 0o755);
  const exportDirs: Record<string, string> = {};
  for (const name of exportNames) {
    exportDirs[name] = join(root, "exports", name);
    mkdirSync(exportDirs[name]!, { recursive: true, mode: 0o755 });
  }
  const mountpoint = join(root, "mnt");
  mkdirSync(mountpoint, { mode: 0o755 });

  const servers: Started[] = [];
  const mounts: Started[] = [];
  let nats: NatsServer | undefined;
  let bus: StackBus | undefined;
  let tornDown = false;

  const logs = () =>
    [
      ...(nats ? [`--- nats-server ---\n${nats.output()}`] : []),
      ...servers.map((server, i) => `--- natsfs server #${i + 1} ---\n${server.output()}`),
      ...mounts.map((mount) => `--- natsfs mount ---\n${mount.output()}`),
    ].join("\n");

  const teardown = async () => {
    if (tornDown) return;
    tornDown = true;
    // The mount process unmounts itself on SIGTERM (the clean path); one that had to be killed leaves a
    // dead mount behind ("transport endpoint is not connected"), which the lazy unmount clears.
    for (const proc of mounts) await stopProcess(proc);
    await unmount(mountpoint);
    for (const proc of servers) await stopProcess(proc);
    if (nats) await stopProcess(nats);
    removeUnlessMounted(root);
  };

  const startServer = async (extraArgs: string[] = []) => {
    if (!bus) throw new Error("nats-server is not running");
    const server = startServerProcess(bus, [...(options.extraServerArgs ?? []), ...extraArgs]);
    servers.push(server);
    return server;
  };

  try {
    ({ nats, bus } = await startStackBus(root, exportDirs, options));
    await startServer();
    const target = options.mountAll ? undefined : exportNames[0]!;
    mounts.push(await startMountProcess(bus, target, mountpoint, options.extraMountArgs));
  } catch (err) {
    const output = logs();
    await teardown();
    throw new Error(`${(err as Error).message}\n${output}`);
  }

  return {
    root,
    nats: nats!,
    bus: bus!,
    servers,
    mount: mounts[0]!,
    mountpoint,
    exportDirs,
    exportDir: exportDirs[exportNames[0]!]!,
    startServer,
    logs,
    teardown,
  };
}

/** Removes a temp tree, unless a mount is still attached below it (removing through a live mount would delete remote files or hang). */
export function removeUnlessMounted(root: string): void {
  const prefix = resolve(root) + "/";
  const stillMounted = fuseMounts().filter((path) => path.startsWith(prefix));
  if (stillMounted.length > 0) {
    process.stderr.write(`mount helper: leaving ${root}: still mounted: ${stillMounted.join(", ")}\n`);
    return;
  }
  rmSync(root, { recursive: true, force: true });
}

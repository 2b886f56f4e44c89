/**
 * Building blocks of the fault suites (test/fault-*.test.ts): nats-server nodes and clusters that can
 * be killed, frozen, lame-ducked and restarted on the same port; natsfs servers restartable on the same
 * export directory; mounts with a metrics endpoint, optionally inside a network namespace; worker
 * processes that do file I/O on the mount (so a hung mount never blocks the test process itself).
 * Everything a rig starts is stopped by PID in `teardown()`, frozen processes are resumed first.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, statSync, writeFileSync, writeSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { NATS_CONFIG_DEFAULTS } from "../../src/security/index.js";
import { fetchMetrics, sha256File, sumCounter } from "../fixtures/posix-common.js";
import { CLI, isFuseMounted, removeUnlessMounted, run, stopProcess, unmount } from "./mount.js";
import { freePort } from "./ports.js";
import { start, type Started } from "./processes.js";

export const MiB = 1024 * 1024;

const TIMEOUTS = {
  natsStartMs: 10_000,
  clusterFormMs: 15_000,
  serverStartMs: 15_000,
  mountMs: 20_000,
  httpMs: 3_000,
} as const;

/** Rejects with a message naming `what` when `promise` has not settled after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes `size` random bytes to `path` in 8 MiB pieces. */
export function writeRandomFile(path: string, size: number): void {
  const fd = openSync(path, "w");
  try {
    for (let written = 0; written < size; ) {
      const chunk = randomBytes(Math.min(8 * MiB, size - written));
      written += writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
}

/** Polls `check` until it returns true; unlike processes.ts waitFor, an error thrown by `check` ends the wait. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends a signal to one of our own processes if it still runs. */
function signal(proc: Started, sig: NodeJS.Signals): void {
  if (alive(proc.child)) proc.child.kill(sig);
}

/** Kills with SIGKILL and waits (bounded) until the process is gone. */
export async function killHard(proc: Started): Promise<void> {
  if (!alive(proc.child)) return;
  const exited = new Promise<void>((resolve) => proc.child.once("exit", () => resolve()));
  proc.child.kill("SIGKILL");
  await withTimeout(exited, 5_000, `pid ${proc.pid} to die after SIGKILL`);
}

async function httpGet(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(TIMEOUTS.httpMs) });
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, host);
    socket.setTimeout(1_000, () => { socket.destroy(); resolve(false); });
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

// ---------------------------------------------------------------- the rig

/** Owns every process, mount and namespace of one test; `teardown()` undoes all of it, bounded. */
export class Rig {
  readonly root: string;
  readonly exportDir: string;
  readonly scratch: string;
  private readonly procs: Started[] = [];
  private readonly frozen = new Set<Started>();
  private readonly mountpoints: string[] = [];
  private readonly cleanups: Array<() => Promise<void>> = [];
  private readonly labels = new Map<Started, string>();
  private tornDown = false;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "natsfs-fault-"));
    this.exportDir = join(this.root, "export");
    this.scratch = join(this.root, "scratch");
    mkdirSync(this.exportDir, { recursive: true });
    mkdirSync(this.scratch, { recursive: true });
  }

  track(proc: Started, label: string): Started {
    this.procs.push(proc);
    this.labels.set(proc, label);
    return proc;
  }

  /** SIGSTOP; the process is resumed in teardown if the test does not resume it. */
  freeze(proc: Started): void {
    signal(proc, "SIGSTOP");
    this.frozen.add(proc);
  }

  thaw(proc: Started): void {
    signal(proc, "SIGCONT");
    this.frozen.delete(proc);
  }

  newMountpoint(name = "mnt"): string {
    const path = join(this.root, name);
    mkdirSync(path, { recursive: true });
    this.mountpoints.push(path);
    return path;
  }

  onTeardown(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  /** Output of every process, newest last, for assertion messages. */
  logs(maxPerProcess = 4_000): string {
    return this.procs.map((p) => `--- ${this.labels.get(p)} (pid ${p.pid}) ---\n${p.output().slice(-maxPerProcess)}`).join("\n");
  }

  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    for (const proc of this.frozen) signal(proc, "SIGCONT");
    this.frozen.clear();
    for (const mountpoint of this.mountpoints) await unmount(mountpoint);
    // Workers and mounts first, then servers, then nats: reverse start order.
    for (const proc of [...this.procs].reverse()) await stopProcess(proc);
    for (const mountpoint of this.mountpoints) await unmount(mountpoint);
    for (const cleanup of this.cleanups.reverse()) await cleanup().catch(() => undefined);
    removeUnlessMounted(this.root);
  }
}

// ---------------------------------------------------------------- nats-server

export interface NatsNode {
  name: string;
  host: string;
  port: number;
  monitorPort: number;
  url: string;
  proc: Started;
  /** Starts it again on the same ports with the same config (after it was killed). */
  restart(): Promise<void>;
  /** host:port as nats.js reports the connected server. */
  address: string;
}

export interface NatsNodeOptions {
  name?: string;
  host?: string;
  port?: number;
  monitorPort?: number;
  /** Extra configuration text (cluster block, lame duck duration, ...). */
  config?: string;
}

/** Starts one nats-server (with a monitoring port) and waits until it accepts connections. */
export async function startNatsNode(rig: Rig, options: NatsNodeOptions = {}): Promise<NatsNode> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? (await freePort());
  const monitorPort = options.monitorPort ?? (await freePort());
  const name = options.name ?? `n${port}`;
  const dir = mkdtempSync(join(rig.root, "nats-"));
  const configPath = join(dir, "nats.conf");
  writeFileSync(configPath, `server_name: ${name}\nlisten: ${host}:${port}\nhttp: 127.0.0.1:${monitorPort}\n${options.config ?? ""}\n`);
  const node: NatsNode = {
    name,
    host,
    port,
    monitorPort,
    url: `nats://${host}:${port}`,
    address: `${host}:${port}`,
    proc: undefined as unknown as Started,
    async restart() {
      node.proc = rig.track(start("nats-server", ["-c", configPath]), `nats-server ${name}`);
      await waitUntil(`nats-server ${name} on ${host}:${port}`, () => alive(node.proc.child) && tcpOpen(host, port), TIMEOUTS.natsStartMs).catch((err) => {
        throw new Error(`${(err as Error).message}\n${node.proc.output()}`);
      });
    },
  };
  await node.restart();
  return node;
}

/** Number of client connections a node's monitoring endpoint lists. */
export async function nodeConnections(node: NatsNode): Promise<Array<{ name?: string; cid: number }>> {
  const response = await httpGet(`http://127.0.0.1:${node.monitorPort}/connz`);
  const body = (await response.json()) as { connections?: Array<{ name?: string; cid: number }> };
  return body.connections ?? [];
}

/**
 * Three clustered nats-server nodes on 127.0.0.1, each routing to the other two, with the minimum lame
 * duck duration nats-server accepts (nats-facts.md) and the ping settings `natsfs nats-config` renders,
 * so a frozen node's routes are dropped within seconds. Resolves once every node sees both routes.
 */
export async function startCluster(rig: Rig, size = 3): Promise<NatsNode[]> {
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort(), monitor: await freePort() })));
  const nodes: NatsNode[] = [];
  for (const [i, p] of ports.entries()) {
    const routes = ports.filter((_, j) => j !== i).map((o) => `nats-route://127.0.0.1:${o.cluster}`);
    const config = [
      `lame_duck_duration: "30s"`,
      `lame_duck_grace_period: "1s"`,
      `ping_interval: "${NATS_CONFIG_DEFAULTS.pingInterval}"`,
      `ping_max: ${NATS_CONFIG_DEFAULTS.pingMax}`,
      `cluster { name: c, host: 127.0.0.1, listen: 127.0.0.1:${p.cluster}, routes: [${routes.join(", ")}] }`,
    ].join("\n");
    nodes.push(await startNatsNode(rig, { name: `node${i + 1}`, port: p.client, monitorPort: p.monitor, config }));
  }
  await waitClusterFormed(nodes);
  return nodes;
}

export async function waitClusterFormed(nodes: NatsNode[]): Promise<void> {
  await waitUntil(
    "every cluster node to see all routes",
    async () => {
      for (const node of nodes) {
        const body = (await httpGet(`http://127.0.0.1:${node.monitorPort}/routez`).then((r) => r.json(), () => ({ num_routes: 0 }))) as { num_routes: number };
        if (body.num_routes < nodes.length - 1) return false;
      }
      return true;
    },
    TIMEOUTS.clusterFormMs,
  );
}

/** Puts a node into lame duck mode (it closes its clients over lame_duck_duration, then exits). */
export async function lameDuck(node: NatsNode): Promise<void> {
  const result = await run("nats-server", ["--signal", `ldm=${node.proc.pid}`]);
  if (result.code !== 0) signal(node.proc, "SIGUSR2");
}

// ---------------------------------------------------------------- natsfs server

export interface FsServer {
  proc: Started;
  metricsPort: number;
  /** Open handles the instance holds now (its /status). */
  openHandles(): Promise<number>;
  /** SIGKILL (bounded wait). */
  kill(): Promise<void>;
  /** Starts a fresh process with the same arguments (same export directory) and waits until it serves. */
  restart(): Promise<void>;
}

/** Starts `natsfs server --insecure` exporting rig.exportDir as `exportName`, and waits until it serves. */
export async function startFsServer(rig: Rig, natsUrls: string[], exportName = "data", extraArgs: string[] = []): Promise<FsServer> {
  const metricsPort = await freePort();
  const args = [
    CLI, "server", "--insecure", "--nats", natsUrls.join(","), "--export", `${exportName}=${rig.exportDir}`, "--metrics-port", String(metricsPort), ...extraArgs,
  ];
  const server: FsServer = {
    proc: undefined as unknown as Started,
    metricsPort,
    async openHandles() {
      const body = (await (await httpGet(`http://127.0.0.1:${metricsPort}/status`)).json()) as { openHandles?: number };
      return body.openHandles ?? 0;
    },
    kill: () => killHard(server.proc),
    async restart() {
      const proc = rig.track(start(process.execPath, args), "natsfs server");
      server.proc = proc;
      await waitUntil("natsfs server to serve", () => {
        if (!alive(proc.child)) throw new Error(`natsfs server exited: ${proc.output()}`);
        return proc.output().includes("natsfs server: serving");
      }, TIMEOUTS.serverStartMs).catch((err) => {
        throw new Error(`${(err as Error).message}\n${proc.output()}`);
      });
    },
  };
  await server.restart();
  return server;
}

// ---------------------------------------------------------------- mount

export interface FaultMount {
  proc: Started;
  mountpoint: string;
  metricsUrl: string;
  metrics(): Promise<string>;
  /** Sum of natsfs_client_handle_remaps_total{result="ok"}. */
  remaps(): Promise<number>;
  /** The mount's non-zero retry, failover, remap and reconnect counters, one "name{labels} value" a line. */
  faultCounters(): Promise<string>;
  /** The mount's /status JSON. */
  status(): Promise<{ natsServer?: string | null; [key: string]: unknown }>;
}

export interface MountOptions {
  exportName?: string;
  extraArgs?: string[];
  /** Command prefix, e.g. ["nsenter", "--net=/var/run/netns/x"]; it must exec (keep the PID). */
  wrapper?: string[];
  /** Address the metrics endpoint binds to (inside a namespace: the namespace's own address). */
  metricsHost?: string;
}

/** Starts `natsfs mount --foreground` with a metrics port and waits until the kernel shows the mount. */
export async function startFaultMount(rig: Rig, natsUrls: string[], mountpoint: string, options: MountOptions = {}): Promise<FaultMount> {
  const metricsPort = await freePort();
  const metricsHost = options.metricsHost ?? "127.0.0.1";
  const argv = [
    process.execPath, CLI, "mount", "--insecure", "--nats", natsUrls.join(","), "--export", options.exportName ?? "data", mountpoint, "--foreground",
    "--metrics-port", String(metricsPort), "--metrics-host", metricsHost, ...(options.extraArgs ?? []),
  ];
  const full = [...(options.wrapper ?? []), ...argv];
  const proc = rig.track(start(full[0]!, full.slice(1)), `natsfs mount ${mountpoint}`);
  await waitUntil(`FUSE mount at ${mountpoint}`, async () => {
    if (!alive(proc.child)) throw new Error(`natsfs mount exited (${proc.child.exitCode ?? proc.child.signalCode})`);
    return isFuseMounted(mountpoint);
  }, TIMEOUTS.mountMs).catch((err) => {
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  });
  const metricsUrl = `http://${metricsHost}:${metricsPort}`;
  const metrics = async () => {
    if (metricsHost === "127.0.0.1") return fetchMetrics(metricsPort);
    return (await httpGet(`${metricsUrl}/metrics`)).text();
  };
  return {
    proc,
    mountpoint,
    metricsUrl,
    metrics,
    faultCounters: async () =>
      (await metrics())
        .split("\n")
        .filter((line) => /^natsfs_client_(retries|failovers|handle_remaps|bus_reconnects)_total/.test(line) && !/ 0$/.test(line))
        .join("\n"),
    remaps: async () => sumCounter(await metrics(), "natsfs_client_handle_remaps_total", { result: "ok" }) ?? 0,
    status: async () => (await (await httpGet(`${metricsUrl}/status`)).json()) as { natsServer?: string | null },
  };
}

/** The nats node the mount is connected to right now, from its /status `natsServer`. */
export async function mountNode(mount: FaultMount, nodes: NatsNode[]): Promise<NatsNode> {
  const status = await mount.status();
  const server = String(status.natsServer ?? "");
  const node = nodes.find((n) => server.endsWith(`:${n.port}`));
  if (!node) throw new Error(`mount reports nats server "${server}", not one of ${nodes.map((n) => n.address).join(", ")}`);
  return node;
}

// ---------------------------------------------------------------- workers

/**
 * A child node process running an ES module given as source, talking in lines: it prints lines the
 * test waits for, and reads lines the test sends. File I/O on a mount happens there, never in the
 * test process, whose thread pool a hung FUSE request would otherwise block.
 */
export interface Worker {
  proc: Started;
  send(line: string): void;
  /** Resolves with the first line (from now on or already seen and not consumed) matching `pattern`. */
  waitLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code (bounded). */
  exited(timeoutMs: number): Promise<number | null>;
}

export function startWorker(rig: Rig, source: string, label: string, wrapper: string[] = []): Worker {
  const argv = [...wrapper, process.execPath, "--input-type=module", "-e", source];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    output += line + "\n";
    wake?.();
  });
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stdin!.on("error", () => undefined);
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => { wake?.(); resolve(code); }));
  const proc: Started = {
    child,
    pid: child.pid!,
    output: () => output.slice(-20_000),
    async stop(sig = "SIGTERM") {
      if (!alive(child)) return;
      child.kill(sig);
      const timedOut = await Promise.race([exit.then(() => false), sleep(5_000).then(() => true)]);
      if (timedOut) child.kill("SIGKILL");
    },
  };
  rig.track(proc, label);
  return {
    proc,
    send: (line) => child.stdin!.write(line + "\n"),
    async waitLine(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = lines.findIndex((l) => pattern.test(l));
        if (index >= 0) return lines.splice(index, 1)[0]!;
        if (!alive(child)) throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}\n${output.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`${label}: no line matching ${pattern} within ${timeoutMs} ms\n${output.slice(-4000)}`);
        await Promise.race([new Promise<void>((r) => (wake = r)), sleep(Math.min(500, Math.max(1, deadline - Date.now())))]);
      }
    },
    exited: (timeoutMs) => withTimeout(exit, timeoutMs, `${label} to exit`),
  };
}

// ---------------------------------------------------------------- network namespace

export interface Netns {
  name: string;
  /** Host side address (nats-server listens here) and namespace side address. */
  hostAddress: string;
  nsAddress: string;
  /** Prefix that runs a command in the namespace's network only (same mount namespace, so FUSE mounts stay visible). */
  wrapper: string[];
  cut(): Promise<void>;
  restore(): Promise<void>;
}

async function ip(args: string[]): Promise<void> {
  const result = await run("ip", args);
  if (result.code !== 0) throw new Error(`ip ${args.join(" ")}: ${result.stderr.trim()}`);
}

/**
 * A network namespace of our own joined to the host by a veth pair with link-local addresses that
 * exist only on this pair. Removed (with both veth ends) in teardown.
 */
export async function createNetns(rig: Rig): Promise<Netns> {
  const tag = randomBytes(3).toString("hex");
  const name = `natsfs-${tag}`;
  const hostVeth = `nfh${tag}`;
  const nsVeth = `nfc${tag}`;
  const octet = 1 + (parseInt(tag, 16) % 60) * 4;
  const hostAddress = `169.254.213.${octet}`;
  const nsAddress = `169.254.213.${octet + 1}`;
  rig.onTeardown(async () => {
    await run("ip", ["link", "del", hostVeth]).catch(() => undefined);
    await run("ip", ["netns", "del", name]).catch(() => undefined);
  });
  await ip(["netns", "add", name]);
  await ip(["link", "add", hostVeth, "type", "veth", "peer", "name", nsVeth]);
  await ip(["link", "set", nsVeth, "netns", name]);
  await ip(["addr", "add", `${hostAddress}/30`, "dev", hostVeth]);
  await ip(["link", "set", hostVeth, "up"]);
  await ip(["-n", name, "addr", "add", `${nsAddress}/30`, "dev", nsVeth]);
  await ip(["-n", name, "link", "set", nsVeth, "up"]);
  await ip(["-n", name, "link", "set", "lo", "up"]);
  return {
    name,
    hostAddress,
    nsAddress,
    wrapper: ["nsenter", `--net=/var/run/netns/${name}`],
    cut: () => ip(["link", "set", hostVeth, "down"]),
    restore: () => ip(["link", "set", hostVeth, "up"]),
  };
}

// ---------------------------------------------------------------- data across a fault

export interface CopyCheck {
  /** sha256 expected and found: source → mount → server disk for the copy in, server disk → mount → local for the copy out. */
  copiedIn: { expected: string; onServer: string; onMount: string };
  copiedOut: { expected: string; found: string };
  /** From the fault's start until both copies had finished. */
  recoveryMs: number;
  inResult: { code: number | null; stderr: string };
  outResult: { code: number | null; stderr: string };
}

/**
 * Copies a random file of `size` bytes into the mount and another one out of it with cp, runs `fault`
 * once both copies have passed `strikeAt` of their size (failing if either finished first), and
 * returns what the checks need. `name` keeps the files of several calls apart.
 */
export async function copyAcrossFault(rig: Rig, mountpoint: string, size: number, name: string, fault: () => Promise<void>, strikeAt = 0.15): Promise<CopyCheck> {
  const sourceIn = join(rig.scratch, `${name}.in`);
  const serverOut = join(rig.exportDir, `${name}.out`);
  const copiedOut = join(rig.scratch, `${name}.out.copy`);
  writeRandomFile(sourceIn, size);
  writeRandomFile(serverOut, size);
  const [expectedIn, expectedOut] = await Promise.all([sha256File(sourceIn), sha256File(serverOut)]);
  const copyTimeoutMs = 240_000;
  const copyIn = run("cp", [sourceIn, join(mountpoint, `${name}.in`)], { timeoutMs: copyTimeoutMs });
  const copyOut = run("cp", [join(mountpoint, `${name}.out`), copiedOut], { timeoutMs: copyTimeoutMs });
  let finished = 0;
  void copyIn.then(() => finished++);
  void copyOut.then(() => finished++);
  const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);
  await waitUntil(
    `both copies of ${name} to pass ${strikeAt * 100} %`,
    () => {
      if (finished > 0) throw new Error(`a copy of ${name} finished before the fault: the file is too small to overlap it`);
      return sizeOf(join(rig.exportDir, `${name}.in`)) > size * strikeAt && sizeOf(copiedOut) > size * strikeAt;
    },
    120_000,
  );
  const faultAt = Date.now();
  await fault();
  const [inResult, outResult] = await Promise.all([copyIn, copyOut]);
  const recoveryMs = Date.now() - faultAt;
  return {
    copiedIn: {
      expected: expectedIn,
      onServer: inResult.code === 0 ? await sha256File(join(rig.exportDir, `${name}.in`)) : "copy failed",
      onMount: inResult.code === 0 ? await sha256File(join(mountpoint, `${name}.in`)) : "copy failed",
    },
    copiedOut: { expected: expectedOut, found: outResult.code === 0 ? await sha256File(copiedOut) : "copy failed" },
    recoveryMs,
    inResult,
    outResult,
  };
}

/** What went wrong with a CopyCheck: empty when all bytes arrived intact. */
function copyProblems(check: CopyCheck): string[] {
  const problems: string[] = [];
  if (check.inResult.code !== 0) problems.push(`cp into the mount exited ${check.inResult.code}: ${check.inResult.stderr.trim()}`);
  if (check.outResult.code !== 0) problems.push(`cp out of the mount exited ${check.outResult.code}: ${check.outResult.stderr.trim()}`);
  if (check.copiedIn.onServer !== check.copiedIn.expected) problems.push("file copied in: the server's disk differs from the source");
  if (check.copiedIn.onMount !== check.copiedIn.expected) problems.push("file copied in: the mount differs from the source");
  if (check.copiedOut.found !== check.copiedOut.expected) problems.push("file copied out differs from the server's file");
  return problems;
}

/**
 * Fails unless every byte of both copies arrived intact. The problems lead the message and the rig's
 * process logs follow, so a report cut short still says what broke.
 */
export function assertCopiesIntact(check: CopyCheck, rig: Rig): void {
  const problems = copyProblems(check);
  if (problems.length > 0) assert.fail(`${problems.join("\n")}\n${rig.logs()}`);
}

/** One line for the test log: how long the copies took after the fault and what the client counted. */
export async function reportRecovery(label: string, check: CopyCheck, mount: FaultMount): Promise<void> {
  const counters = await mount.faultCounters().catch((err: unknown) => `(metrics unavailable: ${(err as Error).message})`);
  process.stderr.write(`${label}: copies done ${(check.recoveryMs / 1000).toFixed(1)} s after the fault\n${counters}\n`);
}

/** The shape most fault suites start from: one nats-server node, one server and one mount. */
export async function startSimpleRig(): Promise<{ rig: Rig; server: FsServer; mount: FaultMount }> {
  const rig = new Rig();
  try {
    const nats = await startNatsNode(rig);
    const server = await startFsServer(rig, [nats.url]);
    const mount = await startFaultMount(rig, [nats.url], rig.newMountpoint());
    return { rig, server, mount };
  } catch (err) {
    await rig.teardown();
    throw err;
  }
}

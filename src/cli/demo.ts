import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { certPath, initCa, issue, loadPolicy, renderNatsConfig } from "../security/index.js";
import { freePort } from "./ports.js";

const DEMO_DEFAULTS = {
  dir: "./demo",
  exportName: "demo",
  /** Certificate names: the nats-server's own, the identity that serves, the identity that mounts. */
  natsCertName: "nats",
  serverIdentity: "fileserver",
  clientIdentity: "demo",
  startTimeoutMs: 20_000,
  stopTimeoutMs: 5_000,
} as const;

interface DemoOptions {
  dir: string;
  insecure?: boolean;
}

/** How the demo's processes meet on the bus: the nats-server config and each natsfs process's flags. */
interface BusSetup {
  url: string;
  natsConfig: string;
  serverArgs: string[];
  mountArgs: string[];
  summary: string[];
}

function plainBus(port: number, exportDir: string): BusSetup {
  return {
    url: `nats://127.0.0.1:${port}`,
    natsConfig: `listen: 127.0.0.1:${port}\n`,
    serverArgs: ["--insecure", "--export", `${DEMO_DEFAULTS.exportName}=${exportDir}`],
    mountArgs: ["--insecure"],
    summary: ["security        none (--insecure): plain NATS, anyone on this machine can connect"],
  };
}

/**
 * Mutual TLS with a policy: a CA and certificates in DIR/pki (kept across runs), a policy granting the
 * client identity read-write access to the export, and the nats-server config rendered from it.
 */
function tlsBus(dir: string, port: number, exportDir: string): BusSetup {
  const pki = join(dir, "pki");
  if (!existsSync(certPath(pki, "ca"))) initCa(pki);
  const hosts: Record<string, string[]> = {
    [DEMO_DEFAULTS.natsCertName]: ["127.0.0.1", "localhost"],
    [DEMO_DEFAULTS.serverIdentity]: [],
    [DEMO_DEFAULTS.clientIdentity]: [],
  };
  for (const [name, names] of Object.entries(hosts)) {
    if (!existsSync(certPath(pki, name))) issue(pki, name, names);
  }
  const policyFile = join(dir, "policy.yaml");
  if (!existsSync(policyFile)) {
    writeFileSync(policyFile, [
      "# natsfs demo policy: edit, then restart the demo (the nats-server config is rendered from it).",
      "exports:",
      `  ${DEMO_DEFAULTS.exportName}: { path: ${JSON.stringify(exportDir)} }`,
      "identities:",
      `  ${DEMO_DEFAULTS.clientIdentity}: { grants: { ${DEMO_DEFAULTS.exportName}: rw } }`,
      `servers: [${DEMO_DEFAULTS.serverIdentity}]`,
      "",
    ].join("\n"));
  }
  // The rendered config has no listen address of its own; the demo keeps nats-server on loopback.
  const natsConfig = `listen: 127.0.0.1:${port}\n${renderNatsConfig(loadPolicy(policyFile), pki, { certName: DEMO_DEFAULTS.natsCertName })}`;
  return {
    url: `tls://127.0.0.1:${port}`,
    natsConfig,
    serverArgs: ["--pki", pki, "--identity", DEMO_DEFAULTS.serverIdentity, "--policy", policyFile],
    mountArgs: ["--pki", pki, "--identity", DEMO_DEFAULTS.clientIdentity],
    summary: [
      `security        mutual TLS, CA and certificates in ${pki}`,
      `                identities: ${DEMO_DEFAULTS.serverIdentity} (serves), ${DEMO_DEFAULTS.clientIdentity} (mounts, rw)`,
      `policy          ${policyFile}`,
    ],
  };
}

/** A process the demo started: stopped by its PID, its output kept in a log file. */
interface DemoProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function launch(name: string, command: string, args: string[], logDir: string): DemoProcess {
  const logFile = join(logDir, `${name}.log`);
  const log = createWriteStream(logFile);
  // Own process group: Ctrl-C reaches only the demo, which then stops everything in order (the mount
  // first, so it can unmount itself cleanly).
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  child.once("error", (err) => log.write(`${command}: ${err.message}\n`));
  if (child.pid === undefined) throw new Error(`could not start ${command}; is it installed?`);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  return { name, child, logFile };
}

/** The last lines of a process's log, to show why it stopped. */
function logTail(proc: DemoProcess, lines = 15): string {
  try {
    return readFileSync(proc.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** True when /proc/mounts lists `path` as a FUSE mount (it escapes spaces and such as octal). */
function isFuseMountpoint(path: string): boolean {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .some((fields) => /^fuse/.test(fields[2] ?? "") && fields[1]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === path);
}

/** The mount is live when the kernel lists it and it is a different device from its parent. */
function mountIsLive(path: string): boolean {
  if (!isFuseMountpoint(path)) return false;
  try {
    return statSync(path).dev !== statSync(dirname(path)).dev;
  } catch {
    return false;
  }
}

function unmount(path: string): void {
  if (isFuseMountpoint(path)) spawnSync("fusermount", ["-uz", path], { stdio: "ignore", timeout: 10_000 });
}

/** Set once SIGINT or SIGTERM arrives; startup gives up and everything started is stopped. */
interface StopRequest {
  signal?: NodeJS.Signals;
}

class Interrupted extends Error {}

/**
 * Polls `ready` until it holds; fails early, with the process's log, if any demo process exits, and
 * stops waiting when the user interrupts.
 */
async function waitUntil(what: string, ready: () => boolean | Promise<boolean>, watched: DemoProcess[], stop: StopRequest): Promise<void> {
  const deadline = Date.now() + DEMO_DEFAULTS.startTimeoutMs;
  for (;;) {
    if (stop.signal) throw new Interrupted(`${stop.signal} while waiting for ${what}`);
    const dead = watched.find((proc) => hasExited(proc.child));
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}:\n${logTail(dead)}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; logs in ${dirname(watched[0]!.logFile)}`);
    await sleep(100);
  }
}

/** True once the endpoint answers 200, i.e. the process is connected and serving. */
function endpointReady(port: number, path: string): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) }).then(
    (response) => response.ok,
    () => false,
  );
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolveOpen(true);
    });
    socket.once("error", () => resolveOpen(false));
  });
}

/** SIGTERM, then SIGKILL after a grace period; waits a bounded time either way. */
async function stopProcess(proc: DemoProcess): Promise<void> {
  if (hasExited(proc.child)) return;
  const exited = once(proc.child, "exit");
  proc.child.kill("SIGTERM");
  if ((await Promise.race([exited, sleep(DEMO_DEFAULTS.stopTimeoutMs, "timeout")])) === "timeout") {
    proc.child.kill("SIGKILL");
    await Promise.race([exited, sleep(DEMO_DEFAULTS.stopTimeoutMs)]);
  }
}

function instructions(dir: string, exportDir: string, mountpoint: string, bus: BusSetup, ports: { server: number; client: number }): string {
  const cli = `node ${process.argv[1]}`;
  return `
natsfs demo is running (nats-server on 127.0.0.1 only).

  nats-server     ${bus.url}  (config ${join(dir, "nats.conf")})
  server          exports "${DEMO_DEFAULTS.exportName}" = ${exportDir}
  mount           ${mountpoint}
  logs            ${join(dir, "logs")}
${bus.summary.map((line) => `  ${line}`).join("\n")}

Try, in another terminal:
  ls -l ${mountpoint}
  echo "hello over NATS" > ${mountpoint}/hello.txt && cat ${exportDir}/hello.txt
  cp -r /etc/apt ${mountpoint}/ && diff -r /etc/apt ${mountpoint}/apt && echo identical
  ${cli} status http://127.0.0.1:${ports.client}     # the client's view
  ${cli} status http://127.0.0.1:${ports.server}     # the server's view
  curl -s http://127.0.0.1:${ports.client}/metrics | grep natsfs_

Press Ctrl-C to unmount and stop everything.
`;
}

async function runDemo(options: DemoOptions): Promise<void> {
  // Ctrl-C also ends a `| tee` the demo may print into: a closed stdout must not stop the clean-up.
  process.stdout.on("error", () => undefined);
  const dir = resolve(options.dir);
  const exportDir = join(dir, "export");
  const mountpoint = join(dir, "mnt");
  const logDir = join(dir, "logs");
  for (const path of [exportDir, mountpoint, logDir]) mkdirSync(path, { recursive: true });
  // A previous demo that was killed hard may have left its mount behind.
  unmount(mountpoint);
  const welcome = join(exportDir, "WELCOME.txt");
  if (!existsSync(welcome)) writeFileSync(welcome, "This file lives in the exported directory and is read through the FUSE mount.\n");

  const natsPort = await freePort();
  const bus = options.insecure ? plainBus(natsPort, exportDir) : tlsBus(dir, natsPort, exportDir);
  const natsConfig = join(dir, "nats.conf");
  writeFileSync(natsConfig, bus.natsConfig);
  const ports = { server: await freePort(), client: await freePort() };
  const self = [process.argv[1]!];

  const started: DemoProcess[] = [];
  const stopAll = async () => {
    // Reverse order of starting: the mount unmounts itself on SIGTERM; if it had to be killed, the
    // lazy unmount clears what it left.
    for (const proc of [...started].reverse()) {
      await stopProcess(proc);
      unmount(mountpoint);
    }
  };

  // Listening from the start, and to every repeat, keeps Ctrl-C from killing the demo before it has
  // stopped what it started.
  const stop: StopRequest = {};
  let requestStop: (signal: NodeJS.Signals) => void = () => undefined;
  const stopRequested = new Promise<NodeJS.Signals>((resolveStop) => (requestStop = resolveStop));
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal) return;
    stop.signal = signal;
    requestStop(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const nats = launch("nats-server", "nats-server", ["-c", natsConfig], logDir);
    started.push(nats);
    await waitUntil(`nats-server on port ${natsPort}`, () => portOpen(natsPort), started, stop);

    const server = launch("server", process.execPath, [
      ...self, "server", "--nats", bus.url, ...bus.serverArgs, "--metrics-port", String(ports.server),
    ], logDir);
    started.push(server);
    await waitUntil("the server to be ready", () => endpointReady(ports.server, "/readyz"), started, stop);

    const mount = launch("mount", process.execPath, [
      ...self, "mount", "--nats", bus.url, ...bus.mountArgs,
      "--export", DEMO_DEFAULTS.exportName, mountpoint, "--foreground", "--metrics-port", String(ports.client),
    ], logDir);
    started.push(mount);
    await waitUntil(`the mount at ${mountpoint}`, () => mountIsLive(mountpoint), started, stop);

    process.stdout.write(instructions(dir, exportDir, mountpoint, bus, ports));
    const exitedEarly = Promise.race(started.map((proc) => once(proc.child, "exit").then(() => proc)));
    const outcome = await Promise.race([stopRequested, exitedEarly]);
    if (typeof outcome !== "string") throw new Error(`${outcome.name} stopped unexpectedly:\n${logTail(outcome)}`);
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
  } finally {
    process.stdout.write("\nstopping: unmounting and stopping the demo processes...\n");
    await stopAll();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  process.stdout.write(`stopped; the exported files stay in ${exportDir}\n`);
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("run nats-server (mutual TLS), a server and a mount locally in the foreground; Ctrl-C stops everything")
    .option("--dir <dir>", "folder for the export, the mountpoint, PKI, policy, configuration and logs", DEMO_DEFAULTS.dir)
    .option("--insecure", "plain NATS without TLS or policy")
    .action((options: DemoOptions) => runDemo(options));
}

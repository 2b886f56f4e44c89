import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_CLIENT_OPTIONS } from "../client/options.js";
import { createClientMetrics, observeCertificateExpiry } from "../metrics/index.js";
import { assertToken, randomId } from "../protocol/index.js";
import { UsageError, VERSION, addBusOptions, addMetricsOptions, collect, parseSeconds, startMetricsEndpoint, untilSignal } from "./common.js";
import { connectBus, type BusFlags } from "./connect.js";

interface MountFlags extends BusFlags {
  export?: string[];
  all?: boolean;
  softTimeout?: number;
  attrTimeout: number;
  foreground?: boolean;
  metricsPort?: number;
  metricsHost: string;
}

function isMounted(mountpoint: string): boolean {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === mountpoint && line.split(" ")[2]?.startsWith("fuse"));
}

/** Resolves once the kernel no longer lists the mount (`fusermount -u` from outside, as with sshfs). */
async function untilUnmounted(mountpoint: string): Promise<"unmounted"> {
  while (isMounted(mountpoint)) await sleep(1000);
  return "unmounted";
}

/** Without --foreground: run the mount in a detached child and return once the kernel shows it. */
async function mountInBackground(mountpoint: string): Promise<void> {
  const logPath = `/tmp/natsfs-mount-${process.pid}.log`;
  const log = openSync(logPath, "a");
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), "--foreground"], {
    detached: true,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  let exited = false;
  child.once("exit", () => (exited = true));
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (isMounted(mountpoint)) {
      child.unref();
      process.stderr.write(`natsfs mount: mounted at ${mountpoint} (pid ${child.pid}, log ${logPath}); unmount with fusermount -u ${mountpoint}\n`);
      return;
    }
    if (exited) throw new Error(`mount failed: ${readFileSync(logPath, "utf8").trim().split("\n").pop() ?? "see " + logPath}`);
    await sleep(100);
  }
  child.kill("SIGTERM");
  throw new Error(`mount did not appear within 30 s; see ${logPath}`);
}

async function runMount(mountpointArg: string, flags: MountFlags): Promise<void> {
  const mountpoint = resolve(mountpointArg);
  if (!flags.all && (flags.export ?? []).length === 0) throw new UsageError("give --export NAME (repeatable) or --all");
  if (flags.all && (flags.export ?? []).length > 0) throw new UsageError("give either --export or --all, not both");
  for (const name of flags.export ?? []) assertUsage(() => assertToken("export name", name));
  try {
    if (!statSync(mountpoint).isDirectory()) throw new UsageError(`${mountpoint} is not a directory`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`mount point ${mountpoint} does not exist`);
  }
  if (isMounted(mountpoint)) throw new Error(`${mountpoint} is already mounted; unmount it first (fusermount -u ${mountpoint})`);
  if (!flags.foreground) return mountInBackground(mountpoint);

  // Loaded here, not at start-up: only mounting needs fuse-native (and libfuse) on the machine.
  const { discoverExports, mountExports } = await import("../client/index.js");
  const { nc, identity } = await connectBus(flags, `natsfs-mount ${mountpoint}`);
  try {
    const exports = flags.all ? await discoverExports(nc, identity) : flags.export!;
    if (exports.length === 0) throw new Error(`no server on this bus serves an export granted to identity "${identity}"`);
    const clientId = randomId();
    const metrics = createClientMetrics({ exportNames: exports, identity, version: VERSION, instance: clientId });
    if (flags.pki !== undefined && !flags.insecure) {
      observeCertificateExpiry(metrics.registry, identity, readFileSync(resolve(flags.pki, `${identity}.pem`)));
    }
    const mounted = await mountExports({
      nc,
      identity,
      exports,
      mountpoint,
      clientId,
      observer: metrics.observer,
      options: { softTimeoutMs: flags.softTimeout === undefined ? undefined : flags.softTimeout * 1000, attrTimeoutS: flags.attrTimeout },
      onUnexpectedError: (op, err) => process.stderr.write(`natsfs mount: unexpected error in ${op}: ${(err as Error).stack ?? String(err)}\n`),
    });
    const endpoint = await startMetricsEndpoint(
      flags,
      metrics.registry,
      () => mounted.probe(),
      () => ({ ...metrics.snapshot(), openHandles: mounted.vfs.openHandleCount, natsServer: mounted.link.server ?? null }),
    );
    const mode = flags.softTimeout === undefined ? "hard" : `soft, ${flags.softTimeout} s`;
    process.stderr.write(
      `natsfs mount: ${exports.join(",")} mounted at ${mountpoint} (${mode})${endpoint ? `, metrics on ${endpoint.url}` : ""}\n`,
    );
    const reason = await Promise.race([untilSignal(), untilUnmounted(mountpoint)]);
    if (reason === "unmounted") {
      process.stderr.write(`natsfs mount: ${mountpoint} was unmounted, exiting\n`);
    } else {
      process.stderr.write(`natsfs mount: ${reason}, unmounting ${mountpoint}\n`);
      await mounted.unmount().catch((err: unknown) => process.stderr.write(`natsfs mount: unmount: ${(err as Error).message}\n`));
    }
    await endpoint?.close();
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

function assertUsage(check: () => unknown): void {
  try {
    check();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function registerMount(program: Command): void {
  const command = program
    .command("mount")
    .description("mount exports with FUSE")
    .argument("<mountpoint>", "empty directory to mount on")
    .option("--export <name>", "export to mount (repeatable; several appear as folders)", collect)
    .option("--all", "mount every export the servers announce, each as a folder")
    .option("--soft-timeout <seconds>", "fail ops with EIO after this long instead of blocking (hard mount by default)", parseSeconds)
    .option(
      "--attr-timeout <seconds>",
      "let the kernel cache file attributes this long: faster metadata, but sizes and link counts seen through another name or client may lag",
      parseSeconds,
      DEFAULT_CLIENT_OPTIONS.attrTimeoutS,
    )
    .option("--foreground", "stay in the foreground until SIGINT/SIGTERM");
  addBusOptions(command);
  addMetricsOptions(command);
  command.action((mountpoint: string, flags: MountFlags) => runMount(mountpoint, flags));
}

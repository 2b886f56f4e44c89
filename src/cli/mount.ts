import { spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_CLIENT_OPTIONS } from "../client/options.js";
import { createClientMetrics, observeCertificateExpiry } from "../metrics/index.js";
import { assertToken, randomId } from "../protocol/index.js";
import { MiB, UsageError, VERSION, addBusOptions, addMetricsOptions, collect, parseMebibytes, parseSeconds, startMetricsEndpoint, untilSignal } from "./common.js";
import { connectBus, type BusFlags } from "./connect.js";

interface MountFlags extends BusFlags {
  export?: string[];
  all?: boolean;
  softTimeout?: number;
  attrTimeout: number;
  actimeo: number;
  cacheSize: number;
  foreground?: boolean;
  metricsPort?: number;
  metricsHost: string;
}

/** The FUSE mount at `mountpoint` as /proc/mounts lists it (octal escapes decoded), if any. */
function fuseMountAt(mountpoint: string): { source: string; type: string } | undefined {
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
    const [source, target, type] = line.split(" ").map((field) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
    if (target === mountpoint && type?.startsWith("fuse")) return { source: source!, type };
  }
  return undefined;
}

function isMounted(mountpoint: string): boolean {
  return fuseMountAt(mountpoint) !== undefined;
}

/**
 * Checks the mount point. A natsfs mount whose process died (kill -9, a crash) stays in the kernel
 * and answers ENOTCONN: it is cleared (`fusermount -uz`), so the same command restarts the mount.
 */
async function prepareMountpoint(mountpoint: string): Promise<void> {
  let failure: NodeJS.ErrnoException | undefined;
  try {
    if (!statSync(mountpoint).isDirectory()) throw new UsageError(`${mountpoint} is not a directory`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    failure = err as NodeJS.ErrnoException;
  }
  const mounted = fuseMountAt(mountpoint);
  if (failure?.code === "ENOTCONN" && mounted?.type === "fuse.natsfs") {
    process.stderr.write(`natsfs mount: clearing the dead natsfs mount at ${mountpoint} (its process is gone)\n`);
    const cleared = spawnSync("fusermount", ["-uz", mountpoint], { encoding: "utf8", timeout: 10_000 });
    if (cleared.status !== 0) throw new Error(`cannot clear the dead mount at ${mountpoint}: ${cleared.stderr.trim() || cleared.error?.message}`);
    return prepareMountpoint(mountpoint);
  }
  if (failure?.code === "ENOENT") throw new UsageError(`mount point ${mountpoint} does not exist`);
  if (failure) throw new Error(`mount point ${mountpoint}: ${failure.message}`);
  if (mounted) throw new Error(`${mountpoint} is already mounted (${mounted.source}); unmount it first (fusermount -u ${mountpoint})`);
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
  await prepareMountpoint(mountpoint);
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
      options: {
        softTimeoutMs: flags.softTimeout === undefined ? undefined : flags.softTimeout * 1000,
        attrTimeoutS: flags.attrTimeout,
        attrCacheMs: flags.actimeo * 1000,
        cacheSizeBytes: flags.cacheSize * MiB,
      },
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
    .option(
      "--actimeo <seconds>",
      "trust cached attributes and names this long without a change notice: the bound on seeing changes made on the server's disk by other programs (0: no cache)",
      parseSeconds,
      DEFAULT_CLIENT_OPTIONS.attrCacheMs / 1000,
    )
    .option(
      "--cache-size <MiB>",
      "memory budget for cached data, readahead, write-behind and attributes",
      parseMebibytes,
      DEFAULT_CLIENT_OPTIONS.cacheSizeBytes / MiB,
    )
    .option("--foreground", "stay in the foreground until SIGINT/SIGTERM");
  addBusOptions(command);
  addMetricsOptions(command);
  command.action((mountpoint: string, flags: MountFlags) => runMount(mountpoint, flags));
}

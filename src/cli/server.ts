import type { Command } from "commander";
import { access, constants } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { NatsConnection } from "nats";
import { createServerMetrics, observeCertificateExpiry, type Readiness } from "../metrics/index.js";
import { PolicyError, loadPolicy } from "../security/index.js";
import { DEFAULT_SERVER_OPTIONS, ExportSpecError, openPolicy, parseExportSpecs, serverLogger, startServer, type AccessPolicy, type ExportConfig, type RunningServer, type ServerOptions } from "../server/index.js";
import { MiB, UsageError, VERSION, addBusOptions, addMetricsOptions, collect, parseCount, parseMebibytes, parseSeconds, startMetricsEndpoint, untilSignal } from "./common.js";
import { connectBus, type BusFlags } from "./connect.js";

interface ServerFlags extends BusFlags {
  export?: string[];
  policy?: string;
  metricsPort?: number;
  metricsHost: string;
  leftoverGrace: number;
  lease: number;
  maxRequestsPerIdentity: number;
  maxBytesPerIdentity: number;
  maxQueuePerIdentity: number;
  maxHandlesPerIdentity: number;
  memoryBudget: number;
}

/** Server options from the command line (each flag's default is DEFAULT_SERVER_OPTIONS'). */
function serverOptions(flags: ServerFlags): Partial<ServerOptions> {
  return {
    leftoverGraceMs: flags.leftoverGrace * 1000,
    leaseMs: flags.lease * 1000,
    maxHandlesPerIdentity: flags.maxHandlesPerIdentity,
    admission: {
      ...DEFAULT_SERVER_OPTIONS.admission,
      perIdentityRequests: flags.maxRequestsPerIdentity,
      perIdentityBytes: Math.round(flags.maxBytesPerIdentity * MiB),
      perIdentityQueue: flags.maxQueuePerIdentity,
      memoryBytes: Math.round(flags.memoryBudget * MiB),
    },
  };
}

interface Exports {
  exports: ExportConfig[];
  policy: ReloadablePolicy;
  /** Identities the policy names, to bound metric labels; undefined with --export flags. */
  knownIdentities?: string[];
}

function readPolicy(file: string) {
  try {
    return loadPolicy(file);
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(err.message);
    throw err;
  }
}

function exportsFrom(flags: ServerFlags): Exports {
  const specs = flags.export ?? [];
  if (specs.length > 0 && flags.policy !== undefined) throw new UsageError("give either --export or --policy, not both");
  if (flags.policy !== undefined) {
    const { exports, policy, identities, servers } = readPolicy(flags.policy);
    if (exports.length === 0) throw new UsageError(`${flags.policy} names no exports`);
    if (flags.identity !== undefined && !servers.includes(flags.identity)) {
      throw new UsageError(`identity "${flags.identity}" is not listed under servers: in ${flags.policy}`);
    }
    return { exports, policy: new ReloadablePolicy(policy), knownIdentities: identities.map((i) => i.name) };
  }
  if (specs.length === 0) throw new UsageError("give --export NAME=PATH[:ro] (repeatable) or --policy FILE");
  try {
    const exports = parseExportSpecs(specs);
    return { exports, policy: new ReloadablePolicy(openPolicy(exports)) };
  } catch (err) {
    if (err instanceof ExportSpecError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The grants in force, swapped whole on SIGHUP: the server checks every request against the policy it
 * holds, so a grant revoked in the file (and on the bus by reloading nats-server) stops working here
 * too without a restart. Exports themselves (names, paths, squash) change only with a restart.
 */
class ReloadablePolicy implements AccessPolicy {
  constructor(private current: AccessPolicy) {}

  grant(identity: string, exportName: string) {
    return this.current.grant(identity, exportName);
  }

  replace(next: AccessPolicy): void {
    this.current = next;
  }
}

/** Re-reads the policy file; a file that no longer parses leaves the policy in force unchanged. */
function reloadOnHangup(file: string, policy: ReloadablePolicy, exports: readonly ExportConfig[]): () => void {
  const onHangup = () => {
    try {
      const next = loadPolicy(file);
      const moved = exports.filter((e) => next.exports.find((n) => n.name === e.name)?.path !== e.path).map((e) => e.name);
      policy.replace(next.policy);
      const note = moved.length > 0 ? ` (export paths changed for ${moved.join(",")}: restart to serve them)` : "";
      process.stderr.write(`natsfs server: SIGHUP: reloaded the grants of ${file}${note}\n`);
    } catch (err) {
      process.stderr.write(`natsfs server: SIGHUP: kept the policy in force: ${(err as Error).message}\n`);
    }
  };
  process.on("SIGHUP", onHangup);
  return () => process.off("SIGHUP", onHangup);
}

/** Ready: connected to the bus and every export directory readable. */
async function readiness(nc: NatsConnection, server: RunningServer, exports: readonly ExportConfig[]): Promise<Readiness> {
  if (nc.isClosed() || !server.status().connected) return { ready: false, reason: "not connected to NATS" };
  for (const config of exports) {
    try {
      await access(config.path, constants.R_OK | constants.X_OK);
    } catch (err) {
      return { ready: false, reason: `export ${config.name}: ${config.path} is not readable: ${(err as Error).message}` };
    }
  }
  return { ready: true };
}

async function runServer(flags: ServerFlags): Promise<void> {
  const { exports, policy, knownIdentities } = exportsFrom(flags);
  const { nc, identity } = await connectBus(flags, `natsfs-server ${exports.map((e) => e.name).join(",")}`);
  const metrics = createServerMetrics({ exportNames: exports.map((e) => e.name), identity, version: VERSION, knownIdentities });
  try {
    const stopReloading = flags.policy === undefined ? () => {} : reloadOnHangup(flags.policy, policy, exports);
    const server = await startServer({ nc, exports, policy, options: serverOptions(flags), observer: metrics.observer, logger: serverLogger() });
    metrics.epochStarted(server.instance, server.epoch);
    if (flags.pki !== undefined && !flags.insecure) {
      observeCertificateExpiry(metrics.registry, identity, readFileSync(resolve(flags.pki, `${identity}.pem`)));
    }
    const endpoint = await startMetricsEndpoint(flags, metrics.registry, () => readiness(nc, server, exports), () => metrics.snapshot());
    const metricsNote = endpoint ? `, metrics on ${endpoint.url}` : "";
    process.stderr.write(`natsfs server: serving ${exports.map((e) => e.name).join(",")} as instance ${server.instance}${metricsNote}\n`);
    const signal = await untilSignal();
    process.stderr.write(`natsfs server: ${signal}, stopping\n`);
    stopReloading();
    await server.stop();
    await endpoint?.close();
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

export function registerServer(program: Command): void {
  const command = program
    .command("server")
    .description("serve directories on the bus")
    .option("--export <name=path[:ro]>", "export a directory (repeatable); every identity gets rw, or ro with :ro", collect)
    .option("--policy <file>", "policy file naming exports, identities and grants (instead of --export); SIGHUP re-reads its grants")
    .option("--leftover-grace <seconds>", "remove .fuse_hidden* files unchanged this long at start", parseSeconds, DEFAULT_SERVER_OPTIONS.leftoverGraceMs / 1000)
    .option("--lease <seconds>", "close the handles of a client not heard from this long (clients renew every 30 s)", parseSeconds, DEFAULT_SERVER_OPTIONS.leaseMs / 1000)
    .option("--max-requests-per-identity <n>", "requests one identity may have executing at once; more wait in its queue", parseCount, DEFAULT_SERVER_OPTIONS.admission.perIdentityRequests)
    .option("--max-bytes-per-identity <MiB>", "request and reply bytes one identity may have in flight", parseMebibytes, DEFAULT_SERVER_OPTIONS.admission.perIdentityBytes / MiB)
    .option("--max-queue-per-identity <n>", "requests one identity may have waiting; beyond it they are refused (EAGAIN, the client retries)", parseCount, DEFAULT_SERVER_OPTIONS.admission.perIdentityQueue)
    .option("--max-handles-per-identity <n>", "open handles one identity may hold on one export; beyond it its least recently used idle one is closed", parseCount, DEFAULT_SERVER_OPTIONS.maxHandlesPerIdentity)
    .option("--memory-budget <MiB>", "memory for requests in flight and open handles, for the whole process", parseMebibytes, DEFAULT_SERVER_OPTIONS.admission.memoryBytes / MiB);
  addBusOptions(command);
  addMetricsOptions(command);
  command.action((flags: ServerFlags) => runServer(flags));
}

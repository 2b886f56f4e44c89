import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { CACHE_KINDS } from "../client/budget.js";
import type { ClientObserver, NoticeResult } from "../client/observer.js";
import { OP_NAMES, errnoClass } from "../protocol/index.js";
import { certificateExpiryGauge } from "./cert-expiry.js";
import { LATENCY_BUCKETS_SECONDS, countable, createRoleRegistry } from "./registry.js";
import { FAILOVER_REASONS, REMAP_RESULTS, zeroCounts, type ClientStatus } from "./status.js";

export interface ClientMetricsOptions {
  /** Exports this client mounts; they are listed in /status even before the first op. */
  exportNames: readonly string[];
  identity: string;
  version: string;
  /** The client id that prefixes its request ids, shown in /status. */
  instance?: string;
}

export interface ClientMetrics {
  registry: Registry;
  observer: ClientObserver;
  snapshot(): ClientStatus;
}

const PREFIX = "natsfs_client_";
const NOTICE_RESULTS: readonly NoticeResult[] = ["applied", "own", "damaged", "missed"];

export function createClientMetrics(options: ClientMetricsOptions): ClientMetrics {
  const registry = createRoleRegistry("client", options.version);
  const registries = [registry];
  certificateExpiryGauge(registry);

  const opsTotal = new Counter({
    name: `${PREFIX}ops_total`,
    help: "File system operations finished, by op and result (ok or the errno name)",
    labelNames: ["op", "result"] as const,
    registers: registries,
  });
  const opDuration = new Histogram({
    name: `${PREFIX}op_duration_seconds`,
    help: "Time from an op's start to its answer, retries and failovers included",
    labelNames: ["op"] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: registries,
  });
  const readBytes = new Counter({
    name: `${PREFIX}read_bytes_total`,
    help: "File data bytes received from servers",
    registers: registries,
  });
  const writtenBytes = new Counter({
    name: `${PREFIX}written_bytes_total`,
    help: "File data bytes sent to servers",
    registers: registries,
  });
  const opsInFlight = new Gauge({
    name: `${PREFIX}ops_in_flight`,
    help: "Operations started and not yet answered",
    registers: registries,
  });
  const openHandles = new Gauge({
    name: `${PREFIX}open_handles`,
    help: "Files and directories the kernel holds open through this mount",
    registers: registries,
  });
  const failovers = new Counter({
    name: `${PREFIX}failovers_total`,
    help: "Requests or handles moved to another server instance, by reason",
    labelNames: ["reason"] as const,
    registers: registries,
  });
  const remaps = new Counter({
    name: `${PREFIX}handle_remaps_total`,
    help: "Open handles re-opened on another server instance, by result",
    labelNames: ["result"] as const,
    registers: registries,
  });
  const retries = new Counter({
    name: `${PREFIX}retries_total`,
    help: "Request attempts repeated, by op and reason",
    labelNames: ["op", "reason"] as const,
    registers: registries,
  });
  const reconnects = new Counter({
    name: `${PREFIX}bus_reconnects_total`,
    help: "Times the NATS connection came back after a loss",
    registers: registries,
  });
  const busConnected = new Gauge({
    name: `${PREFIX}bus_connected`,
    help: "1 while connected to a NATS server, else 0",
    registers: registries,
  });
  const exportReachable = new Gauge({
    name: `${PREFIX}export_reachable`,
    help: "1 while at least one server answers for the export, 0 when none does",
    labelNames: ["export"] as const,
    registers: registries,
  });

  const cacheBytes = new Gauge({
    name: `${PREFIX}cache_bytes`,
    help: "Memory the mount's budget holds, by use: cached file data and readahead, write-behind, attributes",
    labelNames: ["kind"] as const,
    registers: registries,
  });
  const cacheLimit = new Gauge({
    name: `${PREFIX}cache_limit_bytes`,
    help: "The mount's memory budget for caches, readahead and write-behind (--cache-size)",
    registers: registries,
  });
  const attrLookups = new Counter({
    name: `${PREFIX}attr_cache_lookups_total`,
    help: "Attribute lookups, by whether the cache answered them (hit) or a server did (miss)",
    labelNames: ["result"] as const,
    registers: registries,
  });
  const notices = new Counter({
    name: `${PREFIX}change_notices_total`,
    help: "Change notices received, by what became of them (applied, own, damaged; missed: a reconnect dropped every cache)",
    labelNames: ["result"] as const,
    registers: registries,
  });

  // Series that alerts and rate() read must exist at 0 from the first scrape.
  for (const reason of FAILOVER_REASONS) failovers.inc({ reason }, 0);
  for (const result of REMAP_RESULTS) remaps.inc({ result }, 0);
  for (const op of OP_NAMES) opsTotal.inc({ op, result: "ok" }, 0);
  for (const kind of CACHE_KINDS) cacheBytes.set({ kind }, 0);
  for (const result of ["hit", "miss"]) attrLookups.inc({ result }, 0);
  for (const result of NOTICE_RESULTS) notices.inc({ result }, 0);
  busConnected.set(0);
  opsInFlight.set(0);
  openHandles.set(0);

  const startedAt = new Date().toISOString();
  const state = {
    opsTotal: 0,
    opsFailed: 0,
    inFlight: 0,
    bytesRead: 0,
    bytesWritten: 0,
    openHandles: 0,
    failovers: zeroCounts(FAILOVER_REASONS),
    remaps: zeroCounts(REMAP_RESULTS),
    retries: 0,
    reconnects: 0,
    connected: false,
    natsServer: undefined as string | undefined,
    reachable: new Map<string, boolean>(),
    lastError: undefined as ClientStatus["lastError"],
  };

  const observer: ClientObserver = {
    opStarted() {
      state.inFlight += 1;
      opsInFlight.set(state.inFlight);
    },
    opFinished(op, errno, seconds) {
      state.inFlight = Math.max(0, state.inFlight - 1);
      opsInFlight.set(state.inFlight);
      state.opsTotal += 1;
      if (errno !== 0) state.opsFailed += 1;
      opsTotal.inc({ op, result: errnoClass(errno) });
      opDuration.observe({ op }, countable(seconds));
    },
    bytesRead(bytes) {
      state.bytesRead += countable(bytes);
      readBytes.inc(countable(bytes));
    },
    bytesWritten(bytes) {
      state.bytesWritten += countable(bytes);
      writtenBytes.inc(countable(bytes));
    },
    retry(op, reason) {
      state.retries += 1;
      retries.inc({ op, reason });
    },
    failover(reason) {
      state.failovers[reason] += 1;
      failovers.inc({ reason });
    },
    remap(result) {
      state.remaps[result] += 1;
      remaps.inc({ result });
    },
    reconnect(server) {
      state.reconnects += 1;
      state.natsServer = server;
      reconnects.inc();
    },
    connectionState(connected, server) {
      state.connected = connected;
      if (server !== undefined) state.natsServer = server;
      busConnected.set(connected ? 1 : 0);
    },
    exportReachable(exportName, reachable) {
      state.reachable.set(exportName, reachable);
      exportReachable.set({ export: exportName }, reachable ? 1 : 0);
    },
    openHandles(count) {
      state.openHandles = countable(count);
      openHandles.set(state.openHandles);
    },
    lastError(message) {
      state.lastError = { message, at: new Date().toISOString() };
    },
    cacheBytes(kind, bytes) {
      cacheBytes.set({ kind }, countable(bytes));
    },
    cacheLimit(bytes) {
      cacheLimit.set(countable(bytes));
    },
    cacheLookup(_cache, hit) {
      attrLookups.inc({ result: hit ? "hit" : "miss" });
    },
    changeNotice(result) {
      notices.inc({ result });
    },
  };

  const exportNames = (): string[] => [...new Set([...options.exportNames, ...state.reachable.keys()])];

  const snapshot = (): ClientStatus => ({
    role: "client",
    version: options.version,
    identity: options.identity,
    ...(options.instance !== undefined && { instance: options.instance }),
    startedAt,
    exports: exportNames().map((name) => {
      const reachable = state.reachable.get(name);
      return reachable === undefined ? { name } : { name, reachable };
    }),
    ...(state.natsServer !== undefined && { natsServer: state.natsServer }),
    connected: state.connected,
    openHandles: state.openHandles,
    ops: { total: state.opsTotal, failed: state.opsFailed },
    opsInFlight: state.inFlight,
    bytes: { read: state.bytesRead, written: state.bytesWritten },
    failovers: { ...state.failovers },
    remaps: { ...state.remaps },
    retries: state.retries,
    reconnects: state.reconnects,
    ...(state.lastError !== undefined && { lastError: state.lastError }),
  });

  return { registry, observer, snapshot };
}

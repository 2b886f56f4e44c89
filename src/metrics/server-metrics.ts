import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { ServerObserver } from "../server/observer.js";
import { errnoClass } from "../protocol/index.js";
import { certificateExpiryGauge } from "./cert-expiry.js";
import { LATENCY_BUCKETS_SECONDS, boundedLabel, countable, createRoleRegistry } from "./registry.js";
import { DENIAL_REASONS, zeroCounts, type ServerStatus } from "./status.js";

export interface ServerMetricsOptions {
  /** Exports this server serves; any other export name in a request is labelled "_other". */
  exportNames: readonly string[];
  /** The server's own identity (its certificate name). */
  identity: string;
  version: string;
  /**
   * Identities named by the policy file. When given, any other identity is labelled "_other", so
   * label cardinality stays bounded even with a permissive bus (e.g. --insecure).
   */
  knownIdentities?: readonly string[];
}

export interface ServerMetrics {
  registry: Registry;
  observer: ServerObserver;
  /** Records the instance id and epoch the service chose at start (shown in /status, epoch gauge). */
  epochStarted(instance: string, epoch: string, at?: Date): void;
  snapshot(): ServerStatus;
}

const PREFIX = "natsfs_server_";

export function createServerMetrics(options: ServerMetricsOptions): ServerMetrics {
  const registry = createRoleRegistry("server", options.version);
  const registries = [registry];
  certificateExpiryGauge(registry);
  const knownExports = new Set(options.exportNames);
  const knownIdentities = options.knownIdentities && new Set(options.knownIdentities);
  const exportLabel = (name: string) => boundedLabel(name, knownExports);
  const identityLabel = (name: string) => boundedLabel(name, knownIdentities);

  const opsTotal = new Counter({
    name: `${PREFIX}ops_total`,
    help: "Requests answered, by export, op, calling identity and result (ok or the errno name)",
    labelNames: ["export", "op", "identity", "result"] as const,
    registers: registries,
  });
  const opDuration = new Histogram({
    name: `${PREFIX}op_duration_seconds`,
    help: "Time from a request's arrival to its reply",
    labelNames: ["export", "op"] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: registries,
  });
  const readBytes = new Counter({
    name: `${PREFIX}read_bytes_total`,
    help: "File data bytes read from disk and sent to clients",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const writtenBytes = new Counter({
    name: `${PREFIX}written_bytes_total`,
    help: "File data bytes received from clients and written to disk",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const openHandles = new Gauge({
    name: `${PREFIX}open_handles`,
    help: "Server handles (open files and directories) held for clients",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const duplicateHits = new Counter({
    name: `${PREFIX}duplicate_request_hits_total`,
    help: "Retried non-idempotent requests answered from the duplicate-request cache",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const denials = new Counter({
    name: `${PREFIX}denials_total`,
    help: "Requests refused by policy or confinement, by export, identity and reason",
    labelNames: ["export", "identity", "reason"] as const,
    registers: registries,
  });
  const malformed = new Counter({
    name: `${PREFIX}malformed_requests_total`,
    help: "Requests that could not be decoded or named no known op",
    registers: registries,
  });
  const damaged = new Counter({
    name: `${PREFIX}damaged_requests_total`,
    help: "Requests whose checksum did not match (damaged on the bus or delivered on the wrong subject); the client resends them",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const queued = new Counter({
    name: `${PREFIX}requests_queued_total`,
    help: "Requests that waited for admission (an identity at its bounds, or the process at its memory budget), by identity",
    labelNames: ["identity"] as const,
    registers: registries,
  });
  const refused = new Counter({
    name: `${PREFIX}requests_refused_total`,
    help: "Requests refused at admission with EAGAIN (the client backs off and resends), by identity and reason",
    labelNames: ["identity", "reason"] as const,
    registers: registries,
  });
  const expired = new Counter({
    name: `${PREFIX}requests_expired_total`,
    help: "Requests dropped unexecuted because they arrived or waited past their client's deadline",
    labelNames: ["export", "op"] as const,
    registers: registries,
  });
  const reclaimed = new Counter({
    name: `${PREFIX}handles_reclaimed_total`,
    help: "Handles closed because their client's lease lapsed (a crashed or cut-off client)",
    labelNames: ["export"] as const,
    registers: registries,
  });
  const logSuppressed = new Counter({
    name: `${PREFIX}log_lines_suppressed_total`,
    help: "Log lines a client caused that were dropped by the log rate limit, by kind",
    labelNames: ["event"] as const,
    registers: registries,
  });
  const busConnected = new Gauge({
    name: `${PREFIX}bus_connected`,
    help: "1 while connected to a NATS server, else 0",
    registers: registries,
  });
  const epochStart = new Gauge({
    name: `${PREFIX}epoch_start_time_seconds`,
    help: "Unix time at which this server instance started its current epoch (handles from older epochs are stale)",
    registers: registries,
  });

  for (const name of knownExports) {
    openHandles.set({ export: name }, 0);
    duplicateHits.inc({ export: name }, 0);
    readBytes.inc({ export: name }, 0);
    writtenBytes.inc({ export: name }, 0);
    damaged.inc({ export: name }, 0);
    reclaimed.inc({ export: name }, 0);
  }
  malformed.inc(0);
  busConnected.set(0);

  const startedAt = new Date().toISOString();
  const state = {
    opsTotal: 0,
    opsFailed: 0,
    bytesRead: 0,
    bytesWritten: 0,
    openHandles: new Map<string, number>(options.exportNames.map((name) => [name, 0])),
    duplicateHits: 0,
    denials: zeroCounts(DENIAL_REASONS),
    malformed: 0,
    damaged: 0,
    connected: false,
    natsServer: undefined as string | undefined,
    instance: undefined as string | undefined,
    epoch: undefined as string | undefined,
  };

  const observer: ServerObserver = {
    opFinished(exportName, op, identity, errno, seconds) {
      state.opsTotal += 1;
      if (errno !== 0) state.opsFailed += 1;
      const exportValue = exportLabel(exportName);
      opsTotal.inc({ export: exportValue, op, identity: identityLabel(identity), result: errnoClass(errno) });
      opDuration.observe({ export: exportValue, op }, countable(seconds));
    },
    bytesRead(exportName, bytes) {
      state.bytesRead += countable(bytes);
      readBytes.inc({ export: exportLabel(exportName) }, countable(bytes));
    },
    bytesWritten(exportName, bytes) {
      state.bytesWritten += countable(bytes);
      writtenBytes.inc({ export: exportLabel(exportName) }, countable(bytes));
    },
    openHandles(exportName, count) {
      const exportValue = exportLabel(exportName);
      state.openHandles.set(exportValue, countable(count));
      openHandles.set({ export: exportValue }, countable(count));
    },
    duplicateRequestHit(exportName) {
      state.duplicateHits += 1;
      duplicateHits.inc({ export: exportLabel(exportName) });
    },
    denial(exportName, identity, reason) {
      state.denials[reason] += 1;
      denials.inc({ export: exportLabel(exportName), identity: identityLabel(identity), reason });
    },
    malformedRequest() {
      state.malformed += 1;
      malformed.inc();
    },
    damagedRequest(exportName) {
      state.damaged += 1;
      damaged.inc({ export: exportLabel(exportName) });
    },
    connectionState(connected, server) {
      state.connected = connected;
      if (server !== undefined) state.natsServer = server;
      busConnected.set(connected ? 1 : 0);
    },
    requestQueued(identity) {
      queued.inc({ identity: identityLabel(identity) });
    },
    requestRefused(identity, reason) {
      refused.inc({ identity: identityLabel(identity), reason });
    },
    requestExpired(exportName, op) {
      expired.inc({ export: exportLabel(exportName), op });
    },
    handlesReclaimed(exportName, count) {
      reclaimed.inc({ export: exportLabel(exportName) }, countable(count));
    },
    logSuppressed(event) {
      logSuppressed.inc({ event });
    },
  };

  const epochStarted = (instance: string, epoch: string, at: Date = new Date()): void => {
    state.instance = instance;
    state.epoch = epoch;
    epochStart.set(at.getTime() / 1000);
  };

  const snapshot = (): ServerStatus => {
    let totalHandles = 0;
    for (const count of state.openHandles.values()) totalHandles += count;
    return {
      role: "server",
      version: options.version,
      identity: options.identity,
      ...(state.instance !== undefined && { instance: state.instance }),
      ...(state.epoch !== undefined && { epoch: state.epoch }),
      startedAt,
      exports: [...state.openHandles].map(([name, handles]) => ({ name, openHandles: handles })),
      ...(state.natsServer !== undefined && { natsServer: state.natsServer }),
      connected: state.connected,
      openHandles: totalHandles,
      ops: { total: state.opsTotal, failed: state.opsFailed },
      bytes: { read: state.bytesRead, written: state.bytesWritten },
      duplicateRequestHits: state.duplicateHits,
      denials: { ...state.denials },
      malformedRequests: state.malformed,
      damagedRequests: state.damaged,
    };
  };

  return { registry, observer, epochStarted, snapshot };
}

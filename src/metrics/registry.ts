import { Gauge, Registry, collectDefaultMetrics } from "prom-client";

export type Role = "client" | "server";

/**
 * Latency buckets shared by client and server so their histograms can be compared panel to panel:
 * from a cached local answer (100 µs) to a request that waited out a failover (10 s).
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Label value for anything outside a known set, so a hostile or mistaken peer cannot add series. */
export const OTHER_LABEL = "_other";

/**
 * A registry of its own per role (never the global one), so a process that runs both a client and a
 * server, like `natsfs demo`, serves each on its own endpoint without name clashes.
 */
export function createRoleRegistry(role: Role, version: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const buildInfo = new Gauge({
    name: "natsfs_build_info",
    help: "Always 1; labels carry the natsfs version and the role of this process",
    labelNames: ["version", "role"] as const,
    registers: [registry],
  });
  buildInfo.set({ version, role }, 1);
  return registry;
}

/** Keeps a label value when it is one of `known` (or when nothing is known), else OTHER_LABEL. */
export function boundedLabel(value: string, known: ReadonlySet<string> | undefined): string {
  if (known === undefined || known.has(value)) return value;
  return OTHER_LABEL;
}

/** Byte counts from callers are trusted to be sizes; a negative or non-finite one is a bug, not traffic. */
export function countable(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}

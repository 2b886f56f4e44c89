import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Registry } from "prom-client";
import { createClientMetrics } from "./client-metrics.js";
import { createServerMetrics } from "./server-metrics.js";

interface MetricRow {
  name: string;
  type: string;
  labels: string[];
  help: string;
  roles: string[];
}

/** prom-client keeps each metric's label names on the instance but leaves them out of its types. */
function labelNamesOf(registry: Registry, name: string): string[] {
  const metric = registry.getSingleMetric(name) as { labelNames?: unknown } | undefined;
  return Array.isArray(metric?.labelNames) ? metric.labelNames.map(String) : [];
}

function natsfsRows(registry: Registry, role: string): MetricRow[] {
  return registry
    .getMetricsAsArray()
    .filter((metric) => metric.name.startsWith("natsfs_"))
    .map((metric) => ({
      name: metric.name,
      type: String(metric.type),
      labels: labelNamesOf(registry, metric.name),
      help: metric.help,
      roles: [role],
    }));
}

const cell = (text: string) => text.replaceAll("|", "\\|");

/**
 * Markdown table of every natsfs metric that the client and server registries define (the standard
 * process_* and nodejs_* metrics from prom-client come on top), for the README.
 */
export function metricsReference(): string {
  const identity = "reference";
  const version = "reference";
  const client = createClientMetrics({ exportNames: [], identity, version });
  const server = createServerMetrics({ exportNames: [], identity, version });
  const byName = new Map<string, MetricRow>();
  for (const row of [...natsfsRows(client.registry, "client"), ...natsfsRows(server.registry, "server")]) {
    const seen = byName.get(row.name);
    if (seen) seen.roles.push(...row.roles);
    else byName.set(row.name, row);
  }
  const rows = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return [
    "| Metric | Type | Labels | Role | Meaning |",
    "| --- | --- | --- | --- | --- |",
    ...rows.map(
      (row) =>
        `| \`${row.name}\` | ${row.type} | ${row.labels.map((label) => `\`${label}\``).join(", ")} | ${row.roles.join(", ")} | ${cell(row.help)} |`,
    ),
    "",
    "Both roles also export prom-client's standard `process_*` and `nodejs_*` metrics.",
    "",
  ].join("\n");
}

const runDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (runDirectly) process.stdout.write(metricsReference());

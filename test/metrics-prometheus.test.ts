import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { createClientMetrics, startMetricsServer, type MetricsServer } from "../src/metrics/index.js";
import { freePort } from "./helpers/ports.js";
import { start, waitFor, type Started } from "./helpers/processes.js";

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

const metrics = createClientMetrics({ exportNames: ["home"], identity: "alice", version: "0.0.0-test" });
let endpoint: MetricsServer;
let prometheus: Started;
let prometheusUrl: string;
const inRepo = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "natsfs-prometheus-"));

async function query(expression: string): Promise<QueryResult> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expression)}`, {
    signal: AbortSignal.timeout(5000),
  });
  return (await response.json()) as QueryResult;
}

async function scalar(expression: string): Promise<number | undefined> {
  const result = await query(expression);
  const first = result.data?.result[0];
  return first === undefined ? undefined : Number(first.value[1]);
}

before(async () => {
  endpoint = await startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    registry: metrics.registry,
    ready: async () => ({ ready: true }),
    status: () => metrics.snapshot(),
  });
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  const configPath = join(dir, "prometheus.yml");
  writeFileSync(
    configPath,
    [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      `rule_files: [${JSON.stringify(inRepo("deploy/prometheus/rules.yml"))}]`,
      "scrape_configs:",
      "  - job_name: natsfs-client",
      `    static_configs: [{ targets: [${JSON.stringify(new URL(endpoint.url).host)}] }]`,
      "",
    ].join("\n"),
  );
  prometheus = start("prometheus", [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ]);
  await waitFor("prometheus to be ready", async () => (await fetch(`${prometheusUrl}/-/ready`)).ok, 20_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n${prometheus.output().slice(-3000)}`);
  });
});

after(async () => {
  await prometheus?.stop();
  await endpoint?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a real Prometheus scrapes the client metrics and sees failovers rise", async () => {
  const failovers = 'natsfs_client_failovers_total{job="natsfs-client",reason="timeout"}';
  await waitFor("the first scrape", async () => (await scalar(failovers)) === 0, 20_000);
  assert.equal(await scalar('up{job="natsfs-client"}'), 1);

  metrics.observer.failover("timeout");
  metrics.observer.failover("timeout");
  metrics.observer.failover("timeout");
  await waitFor("Prometheus to see 3 failovers", async () => (await scalar(failovers)) === 3, 20_000);
  await waitFor("increase() to see the rise", async () => ((await scalar(`increase(${failovers}[1m])`)) ?? 0) > 0, 20_000);
});

test("Prometheus loads the natsfs alert rules", async () => {
  const response = await fetch(`${prometheusUrl}/api/v1/rules`, { signal: AbortSignal.timeout(5000) });
  const body = (await response.json()) as { data: { groups: { rules: { name: string }[] }[] } };
  const names = body.data.groups.flatMap((group) => group.rules.map((rule) => rule.name)).sort();
  assert.deepEqual(names, [
    "NatsfsCertificateExpiringSoon",
    "NatsfsExportUnreachable",
    "NatsfsFailoverBurst",
    "NatsfsHighErrorRate",
    "NatsfsServerDown",
  ]);
});

test("every dashboard expression is valid PromQL", async () => {
  const dashboard = JSON.parse(readFileSync(inRepo("deploy/grafana/dashboards/natsfs.json"), "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  // What Grafana substitutes before it sends a query.
  const substituted = (expression: string) =>
    expression.replaceAll("$__rate_interval", "1m").replaceAll("$export", ".*").replaceAll("$identity", ".*");
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      const result = await query(substituted(target.expr));
      assert.equal(result.status, "success", `${panel.title}: ${target.expr}: ${result.error}`);
    }
  }
});

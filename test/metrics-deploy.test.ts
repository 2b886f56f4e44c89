import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { createClientMetrics, createServerMetrics } from "../src/metrics/index.js";

const inRepo = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const DASHBOARD = inRepo("deploy/grafana/dashboards/natsfs.json");
const RULES = inRepo("deploy/prometheus/rules.yml");
const PROMETHEUS_CONFIG = inRepo("deploy/prometheus/prometheus.yml");
const DATASOURCE = inRepo("deploy/grafana/provisioning/datasources/prometheus.yml");
const DASHBOARD_PROVIDER = inRepo("deploy/grafana/provisioning/dashboards/natsfs.yml");

interface Target { refId: string; expr: string; datasource?: { uid?: string } }
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: { query: string } | string; datasource?: { uid?: string } }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
const rules = parseYaml(readFileSync(RULES, "utf8")) as { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };

/** Metric names a PromQL expression reads, with histogram series suffixes folded into the histogram. */
function metricNamesIn(expression: string): string[] {
  const names = expression.match(/natsfs_[a-z_]+/g) ?? [];
  return names.map((name) => name.replace(/_(bucket|sum|count)$/, ""));
}

function definedMetricNames(): Set<string> {
  const client = createClientMetrics({ exportNames: [], identity: "a", version: "1" });
  const server = createServerMetrics({ exportNames: [], identity: "s", version: "1" });
  return new Set([...client.registry.getMetricsAsArray(), ...server.registry.getMetricsAsArray()].map((metric) => metric.name));
}

const dashboardExpressions = () => [
  ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
  ...dashboard.templating.list.map((variable) => (typeof variable.query === "string" ? variable.query : variable.query.query)),
];

describe("names used by the dashboard and the alerts exist in the registries", () => {
  const defined = definedMetricNames();

  test("dashboard", () => {
    const used = new Set(dashboardExpressions().flatMap(metricNamesIn));
    assert.ok(used.size >= 15, `the dashboard reads ${used.size} metrics`);
    for (const name of used) assert.ok(defined.has(name), `${name} is used in ${DASHBOARD} but no registry defines it`);
  });

  test("alert rules", () => {
    const used = new Set(rules.groups.flatMap((group) => group.rules.flatMap((rule) => metricNamesIn(rule.expr))));
    for (const name of used) assert.ok(defined.has(name), `${name} is used in ${RULES} but no registry defines it`);
  });

  test("the histogram suffixes fold into their histogram", () => {
    assert.deepEqual(metricNamesIn("rate(natsfs_client_op_duration_seconds_bucket[1m]) + natsfs_server_ops_total"), [
      "natsfs_client_op_duration_seconds",
      "natsfs_server_ops_total",
    ]);
  });
});

test("the alerts the runbook names are all there", () => {
  const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
  for (const name of ["NatsfsExportUnreachable", "NatsfsFailoverBurst", "NatsfsHighErrorRate", "NatsfsServerDown", "NatsfsCertificateExpiringSoon"]) {
    assert.ok(alerts.includes(name), name);
  }
});

describe("the dashboard has what Grafana provisioning needs", () => {
  const datasource = parseYaml(readFileSync(DATASOURCE, "utf8")) as { datasources: { uid: string; type: string }[] };
  const datasourceUid = datasource.datasources[0]!.uid;

  test("uid, title, schema version", () => {
    assert.match(dashboard.uid, /^[a-zA-Z0-9_-]{1,40}$/);
    assert.ok(dashboard.title.length > 0);
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  });

  test("export and identity variables come from label_values on the provisioned datasource", () => {
    for (const name of ["export", "identity"]) {
      const variable = dashboard.templating.list.find((candidate) => candidate.name === name);
      assert.ok(variable, `variable ${name}`);
      assert.equal(variable.type, "query");
      assert.equal(variable.datasource?.uid, datasourceUid);
      const query = typeof variable.query === "string" ? variable.query : variable.query.query;
      assert.match(query, new RegExp(`^label_values\\(natsfs_[a-z_]+, ${name}\\)$`));
    }
    const expressions = dashboardExpressions().join("\n");
    assert.match(expressions, /export=~"\$export"/);
    assert.match(expressions, /identity=~"\$identity"/);
  });

  test("panels have ids, a place on the grid, the datasource and targets", () => {
    const ids = new Set<number>();
    for (const panel of dashboard.panels) {
      assert.ok(!ids.has(panel.id), `duplicate panel id ${panel.id}`);
      ids.add(panel.id);
      const { h, w, x, y } = panel.gridPos;
      assert.ok(h > 0 && w > 0 && x >= 0 && y >= 0 && x + w <= 24, `${panel.title}: gridPos ${JSON.stringify(panel.gridPos)}`);
      if (panel.type === "row") continue;
      assert.equal(panel.datasource?.uid, datasourceUid, `${panel.title}: datasource`);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title}: targets`);
      for (const target of panel.targets!) {
        assert.ok(target.refId && target.expr, `${panel.title}: target needs refId and expr`);
      }
    }
    const titles = dashboard.panels.map((panel) => panel.title).join("\n");
    for (const expected of [/failover/i, /remap/i, /latency/i, /read \/ written/i, /errors by errno/i, /open handles/i, /NATS connection/i]) {
      assert.match(titles, expected);
    }
  });

  test("the first row is failover and remapping", () => {
    const firstRow = dashboard.panels.filter((panel) => panel.gridPos.y <= 1);
    assert.ok(firstRow.some((panel) => /failover/i.test(panel.title)));
    assert.ok(firstRow.some((panel) => /remap/i.test(panel.title)));
  });

  test("the provider points at a folder and the datasource at Prometheus", () => {
    const provider = parseYaml(readFileSync(DASHBOARD_PROVIDER, "utf8")) as { providers: { type: string; options: { path: string } }[] };
    assert.equal(provider.providers[0]!.type, "file");
    assert.ok(provider.providers[0]!.options.path.startsWith("/"));
    assert.equal(datasource.datasources[0]!.type, "prometheus");
  });
});

describe("promtool", () => {
  test("check config", () => {
    const output = execFileSync("promtool", ["check", "config", PROMETHEUS_CONFIG], { encoding: "utf8" });
    assert.match(output, /SUCCESS/);
  });
  test("check rules", () => {
    const output = execFileSync("promtool", ["check", "rules", RULES], { encoding: "utf8" });
    assert.match(output, /SUCCESS: 5 rules found/);
  });
});

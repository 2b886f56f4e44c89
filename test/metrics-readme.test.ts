import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { metricsReference } from "../src/metrics/index.js";
import { withMetricsTable } from "../scripts/readme-metrics.js";

it("README's metric table is the one the registries generate (run `make docs` after changing a metric)", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  assert.equal(readme, withMetricsTable(readme, metricsReference()));
});

// Writes the metric table generated from the registries between the README's metrics markers.
import { readFileSync, writeFileSync } from "node:fs";
import { metricsReference } from "../src/metrics/index.js";

export const BEGIN = "<!-- metrics:begin -->";
export const END = "<!-- metrics:end -->";

export function withMetricsTable(readme: string, table: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README.md needs ${BEGIN} and ${END}`);
  return `${readme.slice(0, begin + BEGIN.length)}\n${table.trim()}\n${readme.slice(end)}`;
}

if (process.argv[1]?.endsWith("readme-metrics.ts")) {
  writeFileSync("README.md", withMetricsTable(readFileSync("README.md", "utf8"), metricsReference()));
}

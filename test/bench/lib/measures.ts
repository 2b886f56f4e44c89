// The rows of the comparison table, and the targets for natsfs on each.
import type { BenchConfig } from "./config.js";

export const MEASURE_KEYS = ["seqWrite", "seqRead", "randRead", "create", "stat", "unlink", "untar", "tarCreate", "lsLong", "peakRss"] as const;
export type MeasureKey = (typeof MEASURE_KEYS)[number];

/**
 * data: sequential rows, also shown as a fraction of the bus ceiling; metadata: rows the adapter
 * ceiling bounds; memory: the RSS row, judged against the budget only.
 */
export type MeasureKind = "data" | "metadata" | "other" | "memory";

export interface Measure {
  key: MeasureKey;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  kind: MeasureKind;
}

const thousands = (n: number) => n.toLocaleString("en-US");
const size = (mib: number) => (mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${thousands(mib)} MiB`);

export function measures(config: BenchConfig, treeBytes: number): Measure[] {
  const files = thousands(config.smallFiles);
  const tree = `${config.tree} (${(treeBytes / 1e6).toFixed(0)} MB, links followed)`;
  const m = (key: MeasureKey, label: string, unit: string, kind: MeasureKind, higherIsBetter = true): Measure => ({ key, label, unit, kind, higherIsBetter });
  return [
    m("seqWrite", `sequential write, 1 MiB blocks, ${size(config.seqMiB)}, fsync at end`, "MB/s", "data"),
    m("seqRead", `sequential read, 1 MiB blocks, ${size(config.seqMiB)}, cache dropped`, "MB/s", "data"),
    m("randRead", `random 4 KiB reads, ${config.randReadSeconds} s, cache dropped`, "IOPS", "other"),
    m("create", `create + write 100 B + close, ${files} files`, "ops/s", "metadata"),
    m("stat", `stat, ${files} files`, "ops/s", "metadata"),
    m("unlink", `unlink, ${files} files`, "ops/s", "metadata"),
    m("untar", `untar ${tree}`, "MB/s", "other"),
    m("tarCreate", `tar -c of that tree, cache dropped`, "MB/s", "other"),
    m("lsLong", `ls -l, ${thousands(config.lsEntries)} entries, cache dropped`, "s", "metadata", false),
    m("peakRss", `mount's peak RSS, ${size(config.rssMiB)} write then read`, "MiB", "memory", false),
  ];
}

/** What the issue asks of natsfs on one row, given the other columns of the same run. */
export interface TargetInputs {
  sshfs?: number;
  /** The no-op fs with kernel caches off: the adapter's ceiling for metadata rows. */
  adapter?: number;
  bus?: number;
  budgetMiB: number;
}

/**
 * The value natsfs must reach on a row (at least, or at most when lower is better): every row at least
 * 1.0× sshfs; metadata rows also 1.5× sshfs or 60 % of the adapter ceiling, whichever is lower;
 * sequential rows also 70 % of the bus ceiling; peak RSS within the budget plus 100 MiB.
 * Undefined when a value it depends on is missing.
 */
export function requiredValue(measure: Measure, inputs: TargetInputs): number | undefined {
  if (measure.kind === "memory") return inputs.budgetMiB + 100;
  if (inputs.sshfs === undefined) return undefined;
  // Work in "higher is better" terms (a rate), then turn the answer back into the row's unit.
  const rate = (v: number) => (measure.higherIsBetter ? v : 1 / v);
  const floors = [rate(inputs.sshfs)];
  if (measure.kind === "metadata") {
    if (inputs.adapter === undefined) return undefined;
    floors.push(Math.min(1.5 * rate(inputs.sshfs), 0.6 * rate(inputs.adapter)));
  }
  if (measure.kind === "data") {
    if (inputs.bus === undefined) return undefined;
    floors.push(0.7 * inputs.bus);
  }
  return rate(Math.max(...floors));
}

export function meets(measure: Measure, value: number, required: number): boolean {
  return measure.higherIsBetter ? value >= required : value <= required;
}

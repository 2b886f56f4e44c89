// The one table `make bench` prints: a row per measure, a column per file system, natsfs/sshfs ratios,
// the bus ceiling and natsfs's fraction of it on the sequential rows, and the issue's target per row.
import type { BusCeiling, Direction } from "./bus.js";
import { meets, requiredValue, type Measure, type MeasureKey } from "./measures.js";

export interface Column {
  key: string;
  label: string;
}

export interface Results {
  columns: Column[];
  /** Column key → measure → value. */
  values: Record<string, Partial<Record<MeasureKey, number>>>;
  bus: Partial<Record<Direction, BusCeiling>>;
  budgetMiB: number;
}

/** Three significant digits or more, thousands separated: 12,345 / 123 / 12.3 / 1.23. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const decimals = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);
/** natsfs against another column with > 1 meaning natsfs is better, whichever way the row counts. */
const advantage = (measure: Measure, natsfs: number | undefined, other: number | undefined) =>
  measure.higherIsBetter ? ratio(natsfs, other) : ratio(other, natsfs);
const cell = (value: number | undefined, format: (v: number) => string = formatNumber) => (value === undefined ? "–" : format(value));

const BUS_DIRECTION: Partial<Record<MeasureKey, Direction>> = { seqWrite: "write", seqRead: "read" };
/** The adapter ceiling the metadata targets use: the no-op fs with kernel caches off, as natsfs mounts by default. */
export const ADAPTER_COLUMN = "noop-0";

export function renderTable(results: Results, measures: Measure[]): string {
  const value = (column: string, key: MeasureKey) => results.values[column]?.[key];
  const noopColumns = results.columns.filter((c) => c.key.startsWith("noop-"));
  const mainColumns = results.columns.filter((c) => !c.key.startsWith("noop-"));
  const header = ["measure", ...mainColumns.map((c) => c.label), "natsfs / sshfs", "bus ceiling", "natsfs / bus", ...noopColumns.map((c) => c.label), "target for natsfs", "met"];
  const rows = measures.map((measure) => {
    const natsfs = value("natsfs", measure.key);
    const sshfs = value("sshfs", measure.key);
    const direction = BUS_DIRECTION[measure.key];
    const bus = direction ? results.bus[direction]?.mbPerS : undefined;
    const required = requiredValue(measure, { sshfs, adapter: value(ADAPTER_COLUMN, measure.key), bus, budgetMiB: results.budgetMiB });
    const met = natsfs === undefined || required === undefined ? "–" : meets(measure, natsfs, required) ? "yes" : "no";
    return [
      `${measure.label} (${measure.unit})`,
      ...mainColumns.map((c) => cell(value(c.key, measure.key))),
      cell(advantage(measure, natsfs, sshfs), (r) => `${formatNumber(r)}×`),
      cell(bus),
      cell(ratio(natsfs, bus), (r) => `${Math.round(r * 100)} %`),
      ...noopColumns.map((c) => cell(value(c.key, measure.key))),
      required === undefined ? "–" : `${measure.higherIsBetter ? "≥" : "≤"} ${formatNumber(required)}`,
      met,
    ];
  });
  const numeric = (i: number) => i > 0 && i < header.length - 1;
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (numeric(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The lines under the table: what the bus ceiling measured, and how the targets read. */
export function renderNotes(results: Results): string[] {
  const bus = (["write", "read"] as const)
    .map((d) => results.bus[d])
    .filter((b): b is BusCeiling => b !== undefined)
    .map((b) => `${b.direction}: ${formatNumber(b.messageBytes / 1024)} KiB ${b.direction === "write" ? "requests" : "replies"}, best with ${b.inFlight} in flight`);
  return [
    ...(bus.length > 0 ? [`bus ceiling: nats.js request/reply between two processes over the natsfs stack's mutual-TLS nats-server, messages the size natsfs's data path sent (${bus.join("; ")})`] : []),
    "natsfs / sshfs: above 1× natsfs is better (faster, or smaller for the rows counted in s and MiB)",
    `targets (issue 10): every row ≥ 1.0× sshfs; metadata rows also ≥ 1.5× sshfs or 60 % of the no-op fs with kernel caches off, whichever is lower; sequential rows also ≥ 70 % of the bus ceiling; peak RSS ≤ budget ${results.budgetMiB} MiB + 100 MiB`,
  ];
}

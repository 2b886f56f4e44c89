// Every knob of `make bench` in one place: the sizes by default, smaller ones with
// BENCH_QUICK=1, and any single one overridden by its own environment variable.
import { z } from "zod";

export const TARGET_NAMES = ["local", "sshfs", "natsfs", "noop"] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface BenchConfig {
  quick: boolean;
  /** Size of the sequential write and read file (1 MiB blocks). */
  seqMiB: number;
  /** Duration of the random 4 KiB read run. */
  randReadSeconds: number;
  /** Small files created, stat'ed and unlinked. */
  smallFiles: number;
  /** Directory tree tarred once and then untarred into and tarred from every target. */
  tree: string;
  /** Entries of the directory `ls -l` lists. */
  lsEntries: number;
  /** Size written then read while the mount's peak RSS is taken. */
  rssMiB: number;
  /** The mount's memory budget: the RSS target is this plus 100 MiB. */
  budgetMiB: number;
  /** Duration of each bus ceiling run (one per direction). */
  busSeconds: number;
  /** Requests kept in flight in the bus ceiling runs, one run each; the best is the ceiling. */
  busInFlight: number[];
  /** Message size of the bus ceiling; undefined: the sizes the natsfs data path used in this run. */
  busMessageBytes: number | undefined;
  /** What the bus ceiling uses when the data path's message size could not be measured. */
  fallbackMessageBytes: number;
  /** Kernel attribute/entry timeouts the no-op file system runs with, one column each. */
  noopAttrTimeouts: number[];
  /** Targets measured, in this order. */
  targets: TargetName[];
  /** After the table, profile the natsfs mount and server during a sequential read and write. */
  profile: boolean;
  /** Keep the .cpuprofile files here (else they go with the run's temporary folder). */
  profileDir: string | undefined;
  /** Also write the results as JSON here. */
  jsonOut: string | undefined;
}

const positive = z.coerce.number().positive();
/** "a, b,c" → ["a", "b", "c"] */
const commaList = z.string().transform((text) => text.split(",").map((s) => s.trim()).filter(Boolean));
const numberList = commaList.transform((items) => items.map(Number));

const Env = z.object({
  BENCH_QUICK: z.enum(["0", "1"]).default("0"),
  BENCH_SEQ_MB: positive.optional(),
  BENCH_RANDREAD_S: positive.optional(),
  BENCH_SMALL_FILES: z.coerce.number().int().positive().optional(),
  BENCH_TREE: z.string().min(1).optional(),
  BENCH_LS_ENTRIES: z.coerce.number().int().positive().optional(),
  BENCH_RSS_MB: positive.optional(),
  BENCH_BUDGET_MB: positive.default(256),
  BENCH_BUS_S: positive.optional(),
  BENCH_BUS_IN_FLIGHT: numberList.pipe(z.array(z.number().int().positive()).min(1)).default([1, 8, 32]),
  BENCH_BUS_MSG_BYTES: z.coerce.number().int().positive().optional(),
  BENCH_NOOP_ATTR_TIMEOUTS: numberList.pipe(z.array(z.number().nonnegative()).min(1)).default([0, 1]),
  BENCH_TARGETS: commaList.pipe(z.array(z.enum(TARGET_NAMES)).min(1)).default([...TARGET_NAMES]),
  BENCH_PROFILE: z.enum(["0", "1"]).default("0"),
  BENCH_PROFILE_DIR: z.string().min(1).optional(),
  BENCH_JSON: z.string().min(1).optional(),
});

/** Defaults: the sizes, or a smoke run's. */
const SIZES = {
  full: { seqMiB: 512, randReadSeconds: 20, smallFiles: 2000, tree: "/usr/include", lsEntries: 10_000, rssMiB: 4096, busSeconds: 5 },
  quick: { seqMiB: 32, randReadSeconds: 3, smallFiles: 200, tree: "/usr/include/linux", lsEntries: 1000, rssMiB: 256, busSeconds: 1 },
} as const;

export function benchConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) throw new Error(`bench: bad environment: ${z.prettifyError(parsed.error)}`);
  const e = parsed.data;
  const quick = e.BENCH_QUICK === "1";
  const sizes = quick ? SIZES.quick : SIZES.full;
  return {
    quick,
    seqMiB: e.BENCH_SEQ_MB ?? sizes.seqMiB,
    randReadSeconds: e.BENCH_RANDREAD_S ?? sizes.randReadSeconds,
    smallFiles: e.BENCH_SMALL_FILES ?? sizes.smallFiles,
    tree: e.BENCH_TREE ?? sizes.tree,
    lsEntries: e.BENCH_LS_ENTRIES ?? sizes.lsEntries,
    rssMiB: e.BENCH_RSS_MB ?? sizes.rssMiB,
    budgetMiB: e.BENCH_BUDGET_MB,
    busSeconds: e.BENCH_BUS_S ?? sizes.busSeconds,
    busInFlight: e.BENCH_BUS_IN_FLIGHT,
    busMessageBytes: e.BENCH_BUS_MSG_BYTES,
    fallbackMessageBytes: 128 * 1024,
    noopAttrTimeouts: e.BENCH_NOOP_ATTR_TIMEOUTS,
    targets: e.BENCH_TARGETS,
    profile: e.BENCH_PROFILE === "1",
    profileDir: e.BENCH_PROFILE_DIR,
    jsonOut: e.BENCH_JSON,
  };
}

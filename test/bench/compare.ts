// natsfs side by side with sshfs and the local disk in one run (issue 10's benchmark): sequential and
// random I/O, small-file metadata, tar, `ls -l` of a large directory, the mount's peak RSS, the raw bus
// ceiling and the FUSE adapter's own ceiling (test/bench/noop-fs.ts). Prints one table.
// Sizes come from test/bench/lib/config.ts (BENCH_* variables, BENCH_QUICK=1 for a smoke run).
import { mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { busCeiling, meanMessageBytes, readCounters, type Direction } from "./lib/bus.js";
import { benchConfig, type BenchConfig, type TargetName } from "./lib/config.js";
import { measures as measureList, type MeasureKey } from "./lib/measures.js";
import { profileSequential } from "./lib/profile.js";
import { formatNumber, renderNotes, renderTable, type Results } from "./lib/table.js";
import { localTarget, natsfsTarget, noopTarget, sshfsTarget, type NatsfsTarget, type Target } from "./lib/targets.js";
import { cleanUp, hasFio, listLong, makeTarball, peakRss, populate, randomReads, sequentialRead, sequentialWrite, smallFiles, tarRates } from "./lib/workloads.js";

const config = benchConfig();
const scratch = mkdtempSync(join(tmpdir(), "compare-"));
const log = (line: string) => console.log(`bench: ${line}`);

/** The target running now, stopped by the signal handler when the run is interrupted. */
let current: Target | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping ${current?.label ?? "nothing"}`);
    void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

const startTarget: Record<TargetName, () => Array<() => Promise<Target>>> = {
  local: () => [async () => localTarget()],
  sshfs: () => [sshfsTarget],
  natsfs: () => [() => natsfsTarget()],
  noop: () => config.noopAttrTimeouts.map((seconds) => () => noopTarget(seconds)),
};

/** Message sizes the natsfs data path sent, by direction, measured around its sequential rows. */
const dataPathBytes: Partial<Record<Direction, number>> = {};
const failures: string[] = [];

async function measureTarget(target: Target, tarball: { path: string; bytes: number }, record: (key: MeasureKey, value: number | undefined) => void): Promise<void> {
  const natsfs = target.key === "natsfs" ? (target as NatsfsTarget) : undefined;
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      failures.push(`${target.label}: ${what}: ${(err as Error).message}`);
      log(`${target.label}: ${what} FAILED: ${(err as Error).message}`);
    }
  };
  /** Runs a data row on natsfs between two readings of the server's counters, for the bus ceiling's message size. */
  const counted = async (direction: Direction, work: () => Promise<number | undefined>) => {
    const before = natsfs && (await readCounters(natsfs, direction));
    const value = await work();
    const after = natsfs && (await readCounters(natsfs, direction));
    if (before && after) dataPathBytes[direction] = meanMessageBytes(before, after);
    return value;
  };

  const seqFile = join(target.dir, "seq.bin");
  await step("sequential write", async () => record("seqWrite", await counted("write", () => sequentialWrite(seqFile, config.seqMiB))));
  await step("sequential read", async () => record("seqRead", await counted("read", () => sequentialRead(seqFile, config.seqMiB))));
  await step("random reads", async () => record("randRead", await randomReads(seqFile, config.seqMiB, config.randReadSeconds)));
  await cleanUp(target, "seq.bin");

  await step("small files", async () => {
    const rates = await smallFiles(join(target.dir, "small"), config.smallFiles);
    for (const key of ["create", "stat", "unlink"] as const) record(key, rates[key]);
  });
  await step("tar", async () => {
    const rates = await tarRates(join(target.dir, "tree"), tarball);
    record("untar", rates.untar);
    record("tarCreate", rates.tarCreate);
  });
  await cleanUp(target, "tree");
  await step("ls -l", async () => {
    await populate(join(target.backingDir ?? target.dir, "many"), config.lsEntries);
    record("lsLong", await listLong(join(target.dir, "many")));
  });
  await cleanUp(target, "many");

  const daemon = target.daemonPid;
  if (daemon !== undefined) {
    await step("peak RSS", async () => {
      const file = join(target.dir, "rss.bin");
      record("peakRss", await peakRss(daemon, async () => {
        await sequentialWrite(file, config.rssMiB);
        await sequentialRead(file, config.rssMiB);
      }));
    });
    await cleanUp(target, "rss.bin");
  }
}

async function measureBus(target: NatsfsTarget, results: Results): Promise<void> {
  for (const direction of ["write", "read"] as const) {
    const bytes = config.busMessageBytes ?? dataPathBytes[direction] ?? config.fallbackMessageBytes;
    try {
      const ceiling = await busCeiling(target, direction, bytes, config.busSeconds, config.busInFlight);
      results.bus[direction] = ceiling;
      log(`bus ceiling, ${direction}, ${bytes} B messages: ${formatNumber(ceiling.mbPerS)} MB/s (best with ${ceiling.inFlight} in flight)`);
    } catch (err) {
      failures.push(`bus ceiling (${direction}): ${(err as Error).message}`);
      log(`bus ceiling (${direction}) FAILED: ${(err as Error).message}`);
    }
  }
}

/**
 * Starts a target, trying again when it fails: on a loaded machine a cold start can miss the test
 * helpers' mount deadline (15 s), and the next attempt finds the code in the page cache.
 */
async function startWithRetries<T extends Target>(name: string, starter: () => Promise<T>, attempts = 3): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await starter();
    } catch (err) {
      const message = `${name}: could not start (attempt ${attempt} of ${attempts}): ${(err as Error).message}`;
      log(message);
      if (attempt === attempts) {
        failures.push(message);
        return undefined;
      }
    }
  }
}

function heading(cfg: BenchConfig, startedAt: Date, loadAtStart: number[]): string[] {
  const load = (l: number[]) => l.map((n) => n.toFixed(2)).join(" ");
  return [
    `natsfs benchmark, ${startedAt.toISOString()}: \`${cfg.quick ? "BENCH_QUICK=1 " : ""}make bench\` (test/bench/compare.ts)`,
    `load average at start ${load(loadAtStart)}, at end ${load(loadavg())}; ${hasFio() ? "fio" : "dd (fio missing: no random reads)"}, psync, one job`,
  ];
}

const startedAt = new Date();
const loadAtStart = loadavg();
const results: Results = { columns: [], values: {}, bus: {}, budgetMiB: config.budgetMiB };
log(`tarring ${config.tree} once as the tar rows' input`);
const tarball = await makeTarball(config.tree, scratch);
const rows = measureList(config, tarball.bytes);

for (const name of config.targets) {
  for (const starter of startTarget[name]()) {
    const target = await startWithRetries(name, starter);
    if (!target) continue;
    current = target;
    results.columns.push({ key: target.key, label: target.label });
    const values: Partial<Record<MeasureKey, number>> = (results.values[target.key] = {});
    const label = (key: MeasureKey) => rows.find((r) => r.key === key)!;
    try {
      await measureTarget(target, tarball, (key, value) => {
        if (value === undefined) return;
        values[key] = value;
        log(`${target.label}: ${label(key).label}: ${formatNumber(value)} ${label(key).unit}`);
      });
      if (target.key === "natsfs") await measureBus(target as NatsfsTarget, results);
    } finally {
      await target.stop();
      current = undefined;
    }
  }
}

const table = [...heading(config, startedAt, loadAtStart), "", renderTable(results, rows), "", ...renderNotes(results)];
if (failures.length > 0) table.push("", "failed steps:", ...failures.map((f) => `  ${f}`));
const text = `${table.join("\n")}\n`;
// scripts/run-bench.sh prints every benchmark's table together at the end.
if (process.env.BENCH_TABLE_FILE) writeFileSync(process.env.BENCH_TABLE_FILE, text);
else console.log(`\n${text}`);
if (config.jsonOut) writeFileSync(config.jsonOut, JSON.stringify({ startedAt, config, results, failures }, null, 2));

if (config.profile) {
  log("profiling natsfs during the sequential rows (BENCH_PROFILE=1)");
  console.log(await profileSequential(config, scratch, (starter) => startWithRetries("natsfs (profiled)", starter), (target) => (current = target)));
}
process.exitCode = failures.length > 0 ? 1 : 0;

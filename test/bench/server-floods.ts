// What two hostile floods (issue 9, items 5 and 6) cost a server's event loop, in-process on one
// export without the bus: getattr of a 2,000-level deep path, and a burst of mknod S_IFIFO. Reports
// how long one request holds the event loop before it first yields, the longest event-loop stall
// during each flood, the p99 latency of an unrelated getattr of "/" sent every 10 ms alongside, and
// the most child processes the server process had at once (`ps --ppid`; tsx's esbuild service is
// one). Prints BENCH lines.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { ExportFs } from "../../src/server/export.js";
import { DEFAULT_SERVER_OPTIONS, NULL_SERVER_OBSERVER, parseExportSpec } from "../../src/server/index.js";

const DEPTH = 2000;
const FLOOD = Number(process.env.NATSFS_BENCH_FLOOD ?? "3000");
const SEQUENTIAL = 200;
const PROBE_INTERVAL_MS = 10;
/** Requests handled in one macrotask: nats.js hands every message of one socket read over in a row. */
const BATCH = Number(process.env.NATSFS_BENCH_BATCH ?? "64");
/** Which floods to run (a slow server takes minutes for each). */
const FLOODS = new Set((process.env.NATSFS_BENCH_FLOODS ?? "getattr,mknod").split(","));
const S_IFIFO = 0o010000;

const HOSTILE = { identity: "hostile", client: "hostile", writable: true, deadline: Number.MAX_SAFE_INTEGER };

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${JSON.stringify({ name, value: Math.round(value * 100) / 100, unit })}`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** A 2,000-level chain of one-letter directories, made one level at a time (the whole is near PATH_MAX). */
function makeDeepChain(root: string): string {
  const home = process.cwd();
  process.chdir(root);
  for (let level = 0; level < DEPTH; level += 1) {
    mkdirSync("d");
    process.chdir("d");
  }
  process.chdir(home);
  return "/d".repeat(DEPTH);
}

/** Samples this process's children with ps every 20 ms from a shell of its own (not counted). */
function childSampler(): { stop(): Promise<number> } {
  const script = `while :; do ps --ppid ${process.pid} -o pid= | grep -vcx " *$$" ; sleep 0.02; done`;
  const sampler = spawn("sh", ["-c", script], { stdio: ["ignore", "pipe", "ignore"] });
  let most = 0;
  createInterface({ input: sampler.stdout }).on("line", (line) => (most = Math.max(most, Number(line) || 0)));
  return {
    async stop() {
      await sleep(100);
      sampler.kill();
      return most;
    },
  };
}

interface FloodResult {
  syncMs: number[];
  probeMs: number[];
  maxStallMs: number;
  totalMs: number;
  children: number;
}

/**
 * Sends `count` requests, BATCH at a time in one macrotask as requests from the bus arrive, while a
 * probe getattr of "/" runs every 10 ms; records how long each request ran before first yielding.
 */
async function flood(exportFs: ExportFs, count: number, request: (i: number) => Promise<unknown>): Promise<FloodResult> {
  const syncMs: number[] = [];
  const probeMs: number[] = [];
  const children = childSampler();
  await sleep(200);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = performance.now();
  const probes: Promise<void>[] = [];
  const probe = setInterval(() => {
    const sent = performance.now();
    probes.push(exportFs.call("getattr", { path: "/" }, { ...HOSTILE, identity: "other", client: "other" }).then(() => void probeMs.push(performance.now() - sent)));
  }, PROBE_INTERVAL_MS);
  const requests = await new Promise<Promise<unknown>[]>((resolve) => {
    const sent: Promise<unknown>[] = [];
    const sendNext = () => {
      for (let i = 0; i < BATCH && sent.length < count; i += 1) {
        const before = performance.now();
        sent.push(request(sent.length).catch((err: unknown) => err));
        syncMs.push(performance.now() - before);
      }
      if (sent.length < count) setImmediate(sendNext);
      else resolve(sent);
    };
    setImmediate(sendNext);
  });
  const failures = (await Promise.all(requests)).filter((r) => r instanceof Error);
  const totalMs = performance.now() - started;
  clearInterval(probe);
  await Promise.all(probes);
  delay.disable();
  if (failures.length > 0) console.log(`  ${failures.length} of ${count} requests failed, e.g. ${String(failures[0])}`);
  return { syncMs, probeMs, maxStallMs: delay.max / 1e6, totalMs, children: await children.stop() };
}

function reportFlood(label: string, result: FloodResult): void {
  report(`${label}: event loop held per request before yielding, median`, percentile(result.syncMs, 50), "ms");
  report(`${label}: event loop held per request before yielding, p99`, percentile(result.syncMs, 99), "ms");
  report(`${label}: longest event loop stall`, result.maxStallMs, "ms");
  report(`${label}: whole flood`, result.totalMs, "ms");
  report(`${label}: getattr / alongside, p99 (${result.probeMs.length} probes)`, percentile(result.probeMs, 99), "ms");
  report(`${label}: most child processes at once`, result.children, "processes");
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), "natsfs-bench-floods-"));
  const unbounded = { budget: { hold: () => true, unhold: () => undefined }, handleEvicted: () => undefined };
  const exportFs = new ExportFs(parseExportSpec(`bench=${base}`), { instance: "bench", epoch: "bench" }, DEFAULT_SERVER_OPTIONS, NULL_SERVER_OBSERVER, unbounded);
  try {
    if (FLOODS.has("getattr")) await deepPathFlood(exportFs, base);
    if (FLOODS.has("mknod")) {
      mkdirSync(join(base, "fifos"));
      reportFlood(`${FLOOD} mknod S_IFIFO`, await flood(exportFs, FLOOD, (i) => exportFs.call("mknod", { path: `/fifos/f${i}`, mode: S_IFIFO | 0o644, rdev: 0 }, HOSTILE)));
    }
  } finally {
    await exportFs.close();
    spawnSync("rm", ["-rf", base]); // rm walks with openat: no path length limit
  }
}

async function deepPathFlood(exportFs: ExportFs, base: string): Promise<void> {
  const deep = makeDeepChain(base);
  const sequential: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i += 1) {
    const sent = performance.now();
    await exportFs.call("getattr", { path: deep }, HOSTILE);
    sequential.push(performance.now() - sent);
  }
  report(`getattr of a ${DEPTH}-level path, one at a time, mean`, sequential.reduce((a, b) => a + b, 0) / sequential.length, "ms");
  reportFlood(`${FLOOD} getattrs of a ${DEPTH}-level path`, await flood(exportFs, FLOOD, () => exportFs.call("getattr", { path: deep }, HOSTILE)));
}

await main();

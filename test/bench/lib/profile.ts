// BENCH_PROFILE=1: where natsfs's time goes during the sequential rows. The natsfs mount and server
// run under `node --cpu-prof` for one sequential read and, separately, one sequential write; each
// profile is summarised as self time by source file or package and by function.
import { existsSync, promises as fs, readdirSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { BenchConfig } from "./config.js";
import { natsfsTarget, type NatsfsTarget } from "./targets.js";
import { mustRun } from "./system.js";
import { sequentialRead, sequentialWrite } from "./workloads.js";

const CpuProfile = z.object({
  nodes: z.array(z.object({
    id: z.number(),
    callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }),
    hitCount: z.number().default(0),
  })),
  startTime: z.number(),
  endTime: z.number(),
});
type CpuProfile = z.infer<typeof CpuProfile>;

export interface ProfileShare {
  name: string;
  /** Fraction of the busy (non-idle) samples. */
  share: number;
}

export interface ProfileSummary {
  /** Seconds the JS thread was not idle, and seconds the profile covers. */
  busySeconds: number;
  totalSeconds: number;
  byPlace: ProfileShare[];
  byFunction: ProfileShare[];
}

/** Where a frame's code lives: a package, a file of this project, a Node internal module, or a V8 category. */
export function placeOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith("node:")) return url;
  const own = /\/(dist|src|test)\/(.+)$/.exec(url);
  return own ? `${own[1]}/${own[2]}` : url;
}

function top(totals: Map<string, number>, samples: number, count: number): ProfileShare[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, hits]) => ({ name, share: hits / samples }));
}

/** Self time by place and by function, as shares of the time the JS thread was busy (idle left out). */
export function summarizeProfile(profile: CpuProfile, count = 12): ProfileSummary {
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let samples = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    samples += node.hitCount;
    if (functionName === "(idle)") {
      idle += node.hitCount;
      continue;
    }
    const place = placeOf(url, functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + node.hitCount);
    const fn = url === "" ? functionName : `${functionName || "(anonymous)"} ${place}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.hitCount);
  }
  const busy = Math.max(samples - idle, 1);
  const totalSeconds = (profile.endTime - profile.startTime) / 1e6;
  return {
    busySeconds: samples === 0 ? 0 : (totalSeconds * (samples - idle)) / samples,
    totalSeconds,
    byPlace: top(byPlace, busy, count),
    byFunction: top(byFunction, busy, count),
  };
}

export function renderSummary(title: string, summary: ProfileSummary): string {
  const pct = (s: number) => `${(s * 100).toFixed(1).padStart(5)} %`;
  return [
    `${title}: JS thread busy ${summary.busySeconds.toFixed(1)} s of the ${summary.totalSeconds.toFixed(1)} s profiled; of that busy time:`,
    "  by place:",
    ...summary.byPlace.map((s) => `    ${pct(s.share)}  ${s.name}`),
    "  by function (self time):",
    ...summary.byFunction.map((s) => `    ${pct(s.share)}  ${s.name}`),
  ].join("\n");
}

/** The profile a process with `pid` wrote into `dir` on exit (node names it CPU.<date>.<pid>.<thread>...). */
async function profileOf(dir: string, pid: number): Promise<CpuProfile | undefined> {
  if (!existsSync(dir)) return undefined;
  const file = readdirSync(dir).find((name) => name.includes(`.${pid}.`) && name.endsWith(".cpuprofile"));
  return file ? CpuProfile.parse(JSON.parse(await fs.readFile(join(dir, file), "utf8"))) : undefined;
}

/** A natsfs stack whose server and mount write CPU profiles into `dir` when they exit (not allowed in NODE_OPTIONS). */
const profiledNatsfs = (dir: string) => natsfsTarget({ nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`] });

/**
 * Profiles natsfs during a sequential read and a sequential write of `config.seqMiB`; returns the
 * summaries as text. `start` starts a natsfs target (with the caller's retries).
 */
export async function profileSequential(
  config: BenchConfig,
  scratch: string,
  start: (starter: () => Promise<NatsfsTarget>) => Promise<NatsfsTarget | undefined>,
  onTarget: (target: NatsfsTarget | undefined) => void,
): Promise<string> {
  const phases = [
    {
      name: "sequential read",
      // The file is laid out on the server's disk, so that only the read goes through the mount.
      prepare: (t: NatsfsTarget) => mustRun("dd", ["if=/dev/urandom", `of=${join(t.backingDir!, "profile.bin")}`, "bs=1M", `count=${config.seqMiB}`], 600_000),
      run: (t: NatsfsTarget) => sequentialRead(join(t.dir, "profile.bin"), config.seqMiB),
    },
    {
      name: "sequential write",
      prepare: async () => undefined,
      run: (t: NatsfsTarget) => sequentialWrite(join(t.dir, "profile.bin"), config.seqMiB),
    },
  ];
  const reports: string[] = [];
  for (const phase of phases) {
    const dir = join(config.profileDir ?? scratch, `profile-${phase.name.replace(/ /g, "-")}`);
    const target = await start(() => profiledNatsfs(dir));
    if (!target) {
      reports.push(`natsfs under --cpu-prof, ${phase.name}: could not start`);
      continue;
    }
    onTarget(target);
    let mbPerS: number;
    try {
      await phase.prepare(target);
      mbPerS = await phase.run(target);
    } finally {
      await target.stop();
      onTarget(undefined);
    }
    const seconds = (config.seqMiB * 1024 * 1024) / 1e6 / mbPerS;
    reports.push(`natsfs under --cpu-prof, ${phase.name} of ${config.seqMiB} MiB: ${mbPerS.toFixed(1)} MB/s, ${seconds.toFixed(1)} s (profiler overhead included); profiles in ${dir}`);
    for (const [role, pid] of [["mount", target.mountPid], ["server", target.serverPid]] as const) {
      const profile = await profileOf(dir, pid);
      reports.push(profile ? renderSummary(`  ${role} (pid ${pid})`, summarizeProfile(profile)) : `  ${role}: no profile written (did it exit cleanly?)`);
    }
  }
  return reports.join("\n");
}

// The work each row measures, run the same way in every target's directory.
import { existsSync, promises as fs } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { dropCaches, mustRun, processTree, resetPeakRss, statusBytes, timed } from "./system.js";
import type { Target } from "./targets.js";

/** No single step of a row may take longer than this (a hung mount must not hang the run). */
const STEP_TIMEOUT_MS = 30 * 60_000;
const MB = 1e6;
const MiB = 1024 * 1024;

const FioOutput = z.object({
  jobs: z.array(z.object({
    read: z.object({ bw_bytes: z.number(), iops: z.number() }),
    write: z.object({ bw_bytes: z.number(), iops: z.number() }),
  })).min(1),
});

export const hasFio = (): boolean => existsSync("/usr/bin/fio");

/** One fio job with psync I/O; `options` become `--key=value` arguments. */
async function fio(options: Record<string, string | number>): Promise<z.infer<typeof FioOutput>["jobs"][number]> {
  const args = ["--name=bench", "--ioengine=psync", "--output-format=json", ...Object.entries(options).map(([k, v]) => `--${k}=${v}`)];
  const { stdout } = await mustRun("fio", args, STEP_TIMEOUT_MS);
  // fio may print notes before its JSON.
  return FioOutput.parse(JSON.parse(stdout.slice(stdout.indexOf("{")))).jobs[0]!;
}

/** MB/s of writing `mib` MiB in 1 MiB blocks to `file`, fsync at the end included. */
export async function sequentialWrite(file: string, mib: number): Promise<number> {
  await dropCaches();
  if (hasFio()) return (await fio({ filename: file, rw: "write", bs: "1M", size: `${mib}M`, end_fsync: 1 })).write.bw_bytes / MB;
  const seconds = await timed("dd", ["if=/dev/zero", `of=${file}`, "bs=1M", `count=${mib}`, "conv=fsync"], STEP_TIMEOUT_MS);
  return (mib * MiB) / MB / seconds;
}

/** MB/s of reading `mib` MiB of `file` in 1 MiB blocks with the page cache dropped first. */
export async function sequentialRead(file: string, mib: number): Promise<number> {
  await dropCaches();
  if (hasFio()) return (await fio({ filename: file, rw: "read", bs: "1M", size: `${mib}M` })).read.bw_bytes / MB;
  const seconds = await timed("dd", [`if=${file}`, "of=/dev/null", "bs=1M", `count=${mib}`], STEP_TIMEOUT_MS);
  return (mib * MiB) / MB / seconds;
}

/** IOPS of random 4 KiB reads over the first `mib` MiB of `file` for `seconds`, one at a time; needs fio. */
export async function randomReads(file: string, mib: number, seconds: number): Promise<number | undefined> {
  if (!hasFio()) return undefined;
  await dropCaches();
  return (await fio({ filename: file, rw: "randread", bs: "4k", size: `${mib}M`, time_based: 1, runtime: `${seconds}s` })).read.iops;
}

export interface SmallFileRates {
  create: number;
  stat: number;
  unlink: number;
}

/** Creates `count` files of 100 bytes (create + write + close each), stats each, unlinks each; ops/s of each pass. */
export async function smallFiles(dir: string, count: number): Promise<SmallFileRates> {
  await fs.mkdir(dir);
  const names = Array.from({ length: count }, (_, i) => join(dir, `f${i}`));
  const content = Buffer.alloc(100, "x");
  const rate = async (work: (name: string) => Promise<unknown>) => {
    const started = performance.now();
    for (const name of names) await work(name);
    return count / ((performance.now() - started) / 1000);
  };
  const create = await rate((name) => fs.writeFile(name, content));
  const stat = await rate((name) => fs.stat(name));
  const unlink = await rate((name) => fs.unlink(name));
  await fs.rmdir(dir);
  return { create, stat, unlink };
}

/**
 * A tarball of `tree` in `dir` (on the local disk), made once and untarred into every target. Symlinks
 * and hard links stored as files: sshfs cannot set a symlink's own times or owner (tar then fails on
 * /usr/include's), and the no-op fs makes no hard links.
 */
export async function makeTarball(tree: string, dir: string): Promise<{ path: string; bytes: number }> {
  const path = join(dir, "tree.tar");
  await mustRun("tar", ["--dereference", "--hard-dereference", "-cf", path, "-C", tree, "."], STEP_TIMEOUT_MS);
  return { path, bytes: (await fs.stat(path)).size };
}

/** MB/s of untarring `tarball` into `dir` (created here), then of `tar -c` of it with the page cache dropped. */
export async function tarRates(dir: string, tarball: { path: string; bytes: number }): Promise<{ untar: number; tarCreate: number }> {
  await fs.mkdir(dir);
  const untarSeconds = await timed("tar", ["-xf", tarball.path, "-C", dir], STEP_TIMEOUT_MS);
  await dropCaches();
  // GNU tar skips reading file data when it sees its archive is /dev/null: write to a pipe instead.
  const tarSeconds = await timed("sh", ["-c", 'tar -cf - -C "$0" . | cat > /dev/null', dir], STEP_TIMEOUT_MS);
  return { untar: tarball.bytes / MB / untarSeconds, tarCreate: tarball.bytes / MB / tarSeconds };
}

/** Makes `dir` with `count` empty files (e0, e1, ...). */
export async function populate(dir: string, count: number): Promise<void> {
  await fs.mkdir(dir);
  await mustRun("sh", ["-c", 'cd "$0" && seq -f "e%.0f" "$1" | xargs touch', dir, String(count)], STEP_TIMEOUT_MS);
}

/** Seconds `ls -l` of `dir` takes, page cache dropped first. */
export async function listLong(dir: string): Promise<number> {
  await dropCaches();
  return timed("sh", ["-c", 'ls -l "$0" > /dev/null', dir], STEP_TIMEOUT_MS);
}

const RSS_POLL_MS = 200;

/**
 * Peak RSS in MiB of `pid` and its descendants while `work` runs: the kernel's own peak (VmHWM, reset
 * first) where it can be reset, and RSS polled every 200 ms in any case; the larger of the two.
 */
export async function peakRss(pid: number, work: () => Promise<void>): Promise<number> {
  const reset = processTree(pid).every(resetPeakRss);
  let polledPeak = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      polledPeak = Math.max(polledPeak, processTree(pid).reduce((sum, p) => sum + statusBytes(p, "VmRSS"), 0));
      await sleep(RSS_POLL_MS);
    }
  })();
  try {
    await work();
  } finally {
    polling = false;
    await poller;
  }
  const kernelPeak = reset ? processTree(pid).reduce((sum, p) => sum + statusBytes(p, "VmHWM"), 0) : 0;
  return Math.max(polledPeak, kernelPeak) / MiB;
}

/** Removes a tree the workloads made, from the local disk when the target has one (faster, and not measured). */
export async function cleanUp(target: Target, relative: string): Promise<void> {
  await fs.rm(join(target.backingDir ?? target.dir, relative), { recursive: true, force: true });
}

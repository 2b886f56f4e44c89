// The machine-level pieces the benchmark needs: recording every process it starts (so
// scripts/run-bench.sh can stop them by PID whatever happens), dropping the page cache, timing a
// command, and reading a process tree's memory.
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { run, type CommandResult } from "../../helpers/mount.js";

/** Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses), from field 3 on. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * Appends "PID STARTTIME" to the file named by BENCH_PIDS; the runner's exit trap kills each such
 * process that is still the same one (same start time, so never a recycled PID).
 */
export function recordPid(pid: number): void {
  const file = process.env.BENCH_PIDS;
  if (!file) return;
  try {
    appendFileSync(file, `${pid} ${statFields(pid)[19]}\n`);
  } catch {
    // already gone
  }
}

/** A command that must succeed; its output comes back. */
export async function mustRun(command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  const result = await run(command, args, { timeoutMs });
  if (result.timedOut) throw new Error(`${command} ${args.join(" ")}: no answer within ${timeoutMs / 1000} s`);
  if (result.code !== 0) throw new Error(`${command} ${args.join(" ")}: exit ${result.code ?? result.signal}: ${result.stderr.trim().slice(-500)}`);
  return result;
}

/** Seconds a command that must succeed takes, start to exit. */
export async function timed(command: string, args: string[], timeoutMs: number): Promise<number> {
  const started = performance.now();
  await mustRun(command, args, timeoutMs);
  return (performance.now() - started) / 1000;
}

/** Writes back dirty data everywhere, then drops the page, dentry and inode caches (root only). */
export async function dropCaches(): Promise<void> {
  await mustRun("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], 600_000);
}

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(Number(entry))[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const tree: number[] = [];
  const visit = (p: number) => {
    tree.push(p);
    for (const child of children.get(p) ?? []) visit(child);
  };
  visit(pid);
  return tree;
}

/** A kB field of /proc/PID/status (VmRSS, VmHWM) in bytes; 0 for a process that is gone. */
export function statusBytes(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resets a process's peak RSS (VmHWM) to its current RSS; false where the kernel does not allow it. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

import { lstat, opendir, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { errnoOf } from "../protocol/index.js";
import { withResolved } from "./confine.js";

/**
 * libfuse hides a file that is unlinked while open under `.fuse_hidden<ino><n>` until its last close,
 * as NFS does. A client that dies (or loses its server for good) leaves such files behind. They must
 * outlive a server restart (clients re-open them after a failover), so only those unchanged for a
 * grace period are removed.
 */
export const HIDDEN_PREFIX = ".fuse_hidden";

export function isStaleLeftover(name: string, ctimeMs: number, nowMs: number, graceMs: number): boolean {
  return name.startsWith(HIDDEN_PREFIX) && nowMs - ctimeMs >= graceMs;
}

export interface SweepResult {
  directories: number;
  removed: number;
}

/**
 * Walks the export for stale leftovers and removes them. Each removal goes through the confined
 * resolver, so a directory swapped for a symlink during the walk cannot lead outside the export.
 */
export async function sweepLeftovers(root: string, graceMs: number, logger: Logger, now: () => number = Date.now): Promise<SweepResult> {
  const result: SweepResult = { directories: 0, removed: 0 };
  const pending = ["/"];
  while (pending.length > 0) {
    const relative = pending.pop()!;
    result.directories += 1;
    let dir;
    try {
      dir = await opendir(join(root, relative));
    } catch {
      continue; // gone or swapped since it was listed
    }
    for await (const entry of dir) {
      const child = relative === "/" ? `/${entry.name}` : `${relative}/${entry.name}`;
      if (entry.isDirectory()) pending.push(child);
      else if (entry.isFile() && entry.name.startsWith(HIDDEN_PREFIX)) {
        await withResolved(root, child, async (resolved) => {
          const stats = await lstat(resolved.leafPath);
          if (!stats.isFile() || !isStaleLeftover(entry.name, stats.ctimeMs, now(), graceMs)) return;
          await unlink(resolved.leafPath);
          result.removed += 1;
          logger.info({ path: child }, "removed a leftover of a file unlinked while open");
        }).catch((err: unknown) => logger.warn({ path: child, errno: errnoOf(err) }, "could not remove a leftover"));
      }
    }
  }
  return result;
}

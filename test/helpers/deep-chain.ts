import { mkdirSync } from "node:fs";

/**
 * Makes a chain of `depth` directories named "d" below `root`, one level at a time (chdir, so that
 * no path handed to the kernel comes near PATH_MAX), and returns its path from `root`: "/d/d/...".
 * Remove it with `rm -rf` (which walks with openat), not rmSync: Node's recursion overflows on it.
 */
export function makeDeepChain(root: string, depth: number): string {
  const home = process.cwd();
  process.chdir(root);
  try {
    for (let level = 0; level < depth; level += 1) {
      mkdirSync("d");
      process.chdir("d");
    }
  } finally {
    process.chdir(home);
  }
  return "/d".repeat(depth);
}

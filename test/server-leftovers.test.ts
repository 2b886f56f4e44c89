import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { isStaleLeftover, sweepLeftovers } from "../src/server/leftovers.js";

const quiet = pino({ level: "silent" });
const HOUR = 3_600_000;

describe("leftovers of files unlinked while open", () => {
  const base = mkdtempSync(join(tmpdir(), "natsfs-leftovers-"));
  after(() => rmSync(base, { recursive: true, force: true }));

  it("only .fuse_hidden names past the grace period are stale", () => {
    assert.equal(isStaleLeftover(".fuse_hidden0001", 0, 2 * HOUR, HOUR), true);
    assert.equal(isStaleLeftover(".fuse_hidden0001", HOUR + 1, 2 * HOUR, HOUR), false);
    assert.equal(isStaleLeftover("fuse_hidden0001", 0, 2 * HOUR, HOUR), false);
  });

  it("removes stale leftovers anywhere in the export, keeps fresh ones, other files and everything outside", async () => {
    const root = join(base, "export");
    const outside = join(base, "canary");
    mkdirSync(join(root, "a", "b"), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, ".fuse_hidden01"), "old");
    writeFileSync(join(root, "a", "b", ".fuse_hidden02"), "old");
    writeFileSync(join(root, "a", "keep.txt"), "data");
    writeFileSync(join(outside, ".fuse_hidden03"), "not ours");
    symlinkSync(outside, join(root, "a", "link-out"));

    const fresh = await sweepLeftovers(root, HOUR, quiet);
    assert.equal(fresh.removed, 0, "nothing is older than the grace period yet");
    assert.ok(existsSync(join(root, ".fuse_hidden01")));

    const later = await sweepLeftovers(root, HOUR, quiet, () => Date.now() + 2 * HOUR);
    assert.equal(later.removed, 2);
    assert.equal(existsSync(join(root, ".fuse_hidden01")), false);
    assert.equal(existsSync(join(root, "a", "b", ".fuse_hidden02")), false);
    assert.ok(existsSync(join(root, "a", "keep.txt")));
    assert.ok(existsSync(join(outside, ".fuse_hidden03")), "the sweep never follows a symlink out of the export");
  });
});

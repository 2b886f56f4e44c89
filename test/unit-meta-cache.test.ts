import assert from "node:assert/strict";
import { constants } from "node:fs";
import { describe, it } from "node:test";
import { MemoryBudget } from "../src/client/budget.js";
import { META_ENTRY_BYTES, MetaCache, parentOf } from "../src/client/meta-cache.js";
import type { Stat } from "../src/protocol/index.js";

const stat = (ino: number, mode = constants.S_IFREG | 0o644): Stat => ({
  mode,
  uid: 0,
  gid: 0,
  size: 1,
  nlink: 1,
  ino,
  dev: 1,
  rdev: 0,
  blksize: 4096,
  blocks: 1,
  atimeMs: 0,
  mtimeMs: 0,
  ctimeMs: 0,
});

function setup(ttlMs = 1000, budgetBytes = 1024 * 1024) {
  let now = 0;
  const budget = new MemoryBudget(budgetBytes);
  const cache = new MetaCache(ttlMs, budget, () => now);
  return { cache, budget, advance: (ms: number) => (now += ms) };
}

describe("MetaCache", () => {
  it("keeps positive and negative entries for its TTL", () => {
    const { cache, advance } = setup();
    cache.put("/f", stat(5));
    cache.putMissing("/nope");
    assert.deepEqual(cache.get("/f"), { stat: stat(5) });
    assert.deepEqual(cache.get("/nope"), { missing: true });
    advance(1000);
    assert.equal(cache.get("/f"), undefined);
    assert.equal(cache.get("/nope"), undefined);
  });

  it("a change drops the name, its parent and every other name of its inode, not its siblings", () => {
    const { cache } = setup();
    cache.put("/d", stat(1, constants.S_IFDIR | 0o755));
    cache.put("/d/a", stat(2));
    cache.put("/d/hardlink", stat(2));
    cache.put("/d/b", stat(3));
    cache.changed("/d/a");
    assert.equal(cache.get("/d"), undefined);
    assert.equal(cache.get("/d/a"), undefined);
    assert.equal(cache.get("/d/hardlink"), undefined);
    assert.ok(cache.get("/d/b"));
  });

  it("a tree change drops everything below the name", () => {
    const { cache } = setup();
    cache.put("/d/x/y", stat(4));
    cache.put("/d/x", stat(5, constants.S_IFDIR));
    cache.put("/dx", stat(6));
    cache.treeChanged("/d/x");
    assert.equal(cache.get("/d/x/y"), undefined);
    assert.equal(cache.get("/d/x"), undefined);
    assert.ok(cache.get("/dx"));
  });

  it("an inode change drops its names; clear drops all; each name is charged to the budget", () => {
    const { cache, budget } = setup();
    cache.put("/a", stat(7));
    cache.put("/b", stat(8));
    assert.equal(budget.usedBy("metadata"), 2 * META_ENTRY_BYTES);
    cache.inoChanged(7);
    assert.equal(cache.get("/a"), undefined);
    assert.equal(budget.usedBy("metadata"), META_ENTRY_BYTES);
    cache.clear();
    assert.equal(cache.size, 0);
    assert.equal(budget.usedBytes, 0);
  });

  it("evicts the least recently used names when the budget needs room, and is off with a TTL of 0", () => {
    const { cache, budget } = setup(1000, 3 * META_ENTRY_BYTES);
    for (let i = 0; i < 10; i++) cache.put(`/f${i}`, stat(i));
    assert.equal(cache.size, 3);
    assert.ok(budget.usedBytes <= 3 * META_ENTRY_BYTES);
    assert.ok(cache.get("/f9"));
    const off = setup(0).cache;
    off.put("/f", stat(1));
    assert.equal(off.get("/f"), undefined);
  });

  it("parentOf", () => {
    assert.equal(parentOf("/a/b"), "/a");
    assert.equal(parentOf("/a"), "/");
    assert.equal(parentOf("/"), "/");
  });
});

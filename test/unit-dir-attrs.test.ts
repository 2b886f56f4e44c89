import assert from "node:assert/strict";
import { constants } from "node:fs";
import { describe, it } from "node:test";
import { DirAttrCache, parentOf } from "../src/client/dir-attrs.js";
import type { Stat } from "../src/protocol/index.js";

const stat = (type: number): Stat => ({
  mode: type | 0o755, uid: 0, gid: 0, size: 0, nlink: 2, ino: 1, dev: 1, rdev: 0, blksize: 4096, blocks: 0, atimeMs: 0, mtimeMs: 0, ctimeMs: 0,
});
const dir = stat(constants.S_IFDIR);

describe("DirAttrCache", () => {
  it("keeps directories for its TTL and never files", () => {
    let now = 0;
    const cache = new DirAttrCache(1000, 100, () => now);
    cache.offer("/a", dir);
    cache.offer("/a/file", stat(constants.S_IFREG));
    assert.equal(cache.get("/a"), dir);
    assert.equal(cache.get("/a/file"), undefined);
    now = 1000;
    assert.equal(cache.get("/a"), undefined);
  });

  it("a change drops the path, everything below it and its parent, not its siblings", () => {
    const cache = new DirAttrCache(60_000, 100, () => 0);
    for (const path of ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"]) cache.offer(path, dir);
    cache.changed("/a/b");
    assert.deepEqual(["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"].filter((p) => cache.get(p)), ["/", "/ab", "/x"]);
    cache.changed("/x");
    assert.equal(cache.get("/"), undefined, "the parent of a top-level entry is the root");
  });

  it("is bounded and can be turned off", () => {
    const cache = new DirAttrCache(60_000, 2, () => 0);
    for (const path of ["/1", "/2", "/3"]) cache.offer(path, dir);
    assert.deepEqual(["/1", "/2", "/3"].filter((p) => cache.get(p)), ["/2", "/3"]);
    const off = new DirAttrCache(0);
    off.offer("/a", dir);
    assert.equal(off.get("/a"), undefined);
  });

  it("parentOf", () => {
    assert.equal(parentOf("/a/b"), "/a");
    assert.equal(parentOf("/a"), "/");
    assert.equal(parentOf("/"), "/");
  });
});

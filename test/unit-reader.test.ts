import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReadAhead } from "../src/client/reader.js";

/** A file of `size` bytes whose byte i is i % 251, with every fetch recorded. */
function fakeFile(size: number) {
  const fetches: Array<[number, number]> = [];
  let failNext = false;
  const fetch = async (offset: number, length: number) => {
    fetches.push([offset, length]);
    if (failNext) {
      failNext = false;
      throw new Error("transient");
    }
    const end = Math.min(size, offset + length);
    return Uint8Array.from({ length: Math.max(0, end - offset) }, (_, i) => (offset + i) % 251);
  };
  return { fetch, fetches, failOnce: () => (failNext = true) };
}

const expected = (offset: number, length: number) => Buffer.from(Uint8Array.from({ length }, (_, i) => (offset + i) % 251));

describe("ReadAhead", () => {
  it("returns exactly the bytes asked for, across block boundaries and at the end of the file", async () => {
    const file = fakeFile(1000);
    const reader = new ReadAhead(file.fetch, { blockBytes: 64, maxAheadBlocks: 4 });
    assert.deepEqual(Buffer.from(await reader.read(50, 100)), expected(50, 100));
    assert.deepEqual(Buffer.from(await reader.read(990, 64)), expected(990, 10));
    assert.equal((await reader.read(2000, 10)).length, 0);
  });

  it("fetches ahead of a sequential reader, growing the window up to its cap, never past the end", async () => {
    const file = fakeFile(64 * 20);
    const reader = new ReadAhead(file.fetch, { blockBytes: 64, maxAheadBlocks: 4 });
    for (let offset = 0; offset < 64 * 20; offset += 64) assert.deepEqual(Buffer.from(await reader.read(offset, 64)), expected(offset, 64));
    const offsets = file.fetches.map(([offset]) => offset / 64);
    assert.deepEqual([...new Set(offsets)].sort((a, b) => a - b), [...Array(21).keys()].filter((i) => i <= 20));
    assert.equal(offsets.length, new Set(offsets).size, "no block is fetched twice");
    assert.ok(Math.max(...offsets) <= 20, "one block past the end at most");
  });

  it("does not fetch ahead of random reads", async () => {
    const file = fakeFile(64 * 100);
    const reader = new ReadAhead(file.fetch, { blockBytes: 64, maxAheadBlocks: 8 });
    for (const block of [50, 3, 77, 12]) await reader.read(block * 64, 64);
    assert.deepEqual(file.fetches.map(([offset]) => offset / 64), [50, 3, 77, 12]);
  });

  it("refetches after invalidate() and after a failed fetch", async () => {
    const file = fakeFile(64 * 4);
    const reader = new ReadAhead(file.fetch, { blockBytes: 64, maxAheadBlocks: 2 });
    await reader.read(0, 64);
    reader.invalidate();
    await reader.read(0, 64);
    assert.equal(file.fetches.filter(([offset]) => offset === 0).length, 2);
    file.failOnce();
    await assert.rejects(reader.read(128, 64), /transient/);
    assert.deepEqual(Buffer.from(await reader.read(128, 64)), expected(128, 64));
  });
});

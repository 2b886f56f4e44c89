import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryBudget } from "../src/client/budget.js";
import { DataCache } from "../src/client/data-cache.js";
import { ReadAhead, type ReadableFile } from "../src/client/reader.js";

const BLOCK = 100;

/** A file of `size` bytes whose byte i is i % 251, with every fetch recorded. */
function fakeFile(size: number) {
  const fetches: Array<[number, number]> = [];
  let failNext = false;
  const state = { size };
  const fetch = async (offset: number, length: number) => {
    fetches.push([offset, length]);
    if (failNext) {
      failNext = false;
      throw new Error("transient");
    }
    const end = Math.min(state.size, offset + length);
    return Uint8Array.from({ length: Math.max(0, end - offset) }, (_, i) => (offset + i) % 251);
  };
  return { fetch, fetches, state, failOnce: () => (failNext = true) };
}

const expected = (offset: number, length: number) => Buffer.from(Uint8Array.from({ length }, (_, i) => (offset + i) % 251));

function setup(size: number, budgetBytes = 1_000_000, maxAheadBlocks = 4) {
  const fake = fakeFile(size);
  const budget = new MemoryBudget(budgetBytes);
  const cache = new DataCache(budget);
  const file: ReadableFile & { size: number; generation: number } = { key: "f", size, generation: 0, fetching: new Map() };
  const reader = new ReadAhead(file, cache, budget, fake.fetch, { blockBytes: BLOCK, maxAheadBlocks });
  return { fake, budget, cache, file, reader };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("ReadAhead", () => {
  it("returns exactly the bytes asked for, across block boundaries and at the end of the file", async () => {
    const { reader } = setup(1000);
    assert.deepEqual(Buffer.from(await reader.read(0, 150)), expected(0, 150));
    assert.deepEqual(Buffer.from(await reader.read(150, 120)), expected(150, 120));
    assert.deepEqual(Buffer.from(await reader.read(950, 200)), expected(950, 50));
  });

  it("fetches ahead of a sequential reader, growing the window up to its cap, never past the end", async () => {
    const { reader, fake } = setup(1000);
    await reader.read(0, 50); // first read: random, fetched exactly
    for (let offset = 50; offset < 1000; offset += 50) {
      await reader.read(offset, 50);
      await settle();
    }
    const blockFetches = fake.fetches.filter(([, length]) => length === BLOCK).map(([offset]) => offset);
    assert.deepEqual([...new Set(blockFetches)].sort((x, y) => x - y), [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    assert.ok(fake.fetches.every(([offset]) => offset < 1000), "nothing fetched past the end of the file");
  });

  it("fetches exactly what random reads ask for and caches nothing", async () => {
    const { reader, fake, cache } = setup(10_000);
    await reader.read(5000, 10);
    await reader.read(100, 10);
    await reader.read(9000, 10);
    assert.deepEqual(fake.fetches, [
      [5000, 10],
      [100, 10],
      [9000, 10],
    ]);
    assert.equal(cache.size, 0);
  });

  it("never caches the block at the end of the file: an append is read, not hidden", async () => {
    const { reader, fake, file } = setup(150);
    await reader.read(0, 100);
    assert.deepEqual(Buffer.from(await reader.read(100, 100)), expected(100, 50));
    fake.state.size = 250;
    file.size = 250;
    assert.deepEqual(Buffer.from(await reader.read(150, 100)), expected(150, 100), "the appended bytes");
    assert.deepEqual(Buffer.from(await reader.read(0, 1000)), expected(0, 250), "a read of the whole file from the start");
  });

  it("drops blocks behind a sequential reader and stays inside its budget", async () => {
    const { reader, budget, cache } = setup(100_000, 5 * BLOCK, 16);
    let peak = 0;
    for (let offset = 0; offset < 100_000; offset += 50) {
      assert.deepEqual(Buffer.from(await reader.read(offset, 50)), expected(offset, 50));
      peak = Math.max(peak, budget.usedBytes);
    }
    await settle();
    assert.ok(peak <= 5 * BLOCK, `peak ${peak}`);
    assert.ok(cache.size <= 5);
  });

  it("a backward reader caches nothing and a failed fetch is retried", async () => {
    const { reader, fake, budget } = setup(1000);
    for (let offset = 900; offset >= 0; offset -= 100) await reader.read(offset, 100);
    assert.equal(budget.usedBytes, 0);
    fake.failOnce();
    await assert.rejects(reader.read(0, 10), /transient/);
    assert.deepEqual(Buffer.from(await reader.read(0, 10)), expected(0, 10));
  });

  it("a fetch that started before the file changed is not cached", async () => {
    const { reader, file, cache } = setup(1000);
    await reader.read(500, 10); // random: nothing cached
    const pending = reader.read(510, 50); // sequential: fetches block 5 and ahead
    file.generation += 1;
    await pending;
    await settle();
    assert.equal(cache.size, 0);
  });
});

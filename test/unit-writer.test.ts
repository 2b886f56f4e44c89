import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ERRNO, FsError } from "../src/protocol/index.js";
import { MemoryBudget } from "../src/client/budget.js";
import { WriteBehind, writableLength, type WriteBehindLimits } from "../src/client/writer.js";

/** Lets every queued promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A `send` whose calls wait until the test settles them. */
class FakeSend {
  readonly calls: { via: string; offset: number; data: Buffer; resolve: () => void; reject: (err: unknown) => void }[] = [];
  readonly send = (via: string, offset: number, data: Buffer): Promise<void> =>
    new Promise<void>((resolve, reject) => this.calls.push({ via, offset, data: Buffer.from(data), resolve, reject }));

  get offsets(): number[] {
    return this.calls.map((c) => c.offset);
  }

  resolveAll(): void {
    for (const call of this.calls) call.resolve();
  }
}

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
function track(promise: Promise<void>): { done: boolean; error: unknown; promise: Promise<void> } {
  const state = { done: false, error: undefined as unknown, promise };
  promise.then(
    () => (state.done = true),
    (err: unknown) => {
      state.done = true;
      state.error = err;
    },
  );
  return state;
}

const LIMITS: WriteBehindLimits = { maxMessageBytes: 64, maxInFlight: 4, idleFlushMs: 5 };

function setup(limits: Partial<WriteBehindLimits> = {}, budgetBytes = 1024 * 1024) {
  const fake = new FakeSend();
  const budget = new MemoryBudget(budgetBytes);
  const writer = new WriteBehind<string>(fake.send, budget, { ...LIMITS, ...limits });
  return { fake, budget, writer };
}

describe("WriteBehind", () => {
  it("gathers contiguous writes into messages up to the message size, copying the caller's data", async () => {
    const { fake, writer } = setup();
    const buffer = Buffer.alloc(16, 1);
    for (let i = 0; i < 8; i++) await writer.write("h", i * 16, buffer);
    buffer.fill(9);
    assert.deepEqual(fake.offsets, [0, 64], "two full messages of 64 bytes");
    assert.ok(fake.calls.every((c) => c.data.length === 64 && c.data.every((b) => b === 1)));
    fake.resolveAll();
    await writer.drain();
    assert.equal(writer.idle, true);
  });

  it("sends a partly gathered message on drain, and after a pause on its own", async () => {
    const { fake, writer } = setup();
    await writer.write("h", 0, Buffer.alloc(10, 1));
    assert.equal(fake.calls.length, 0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.deepEqual(fake.offsets, [0], "sent after idleFlushMs");
    await writer.write("h", 10, Buffer.alloc(10, 2));
    const drained = track(writer.drain());
    await settle();
    assert.deepEqual(fake.offsets, [0, 10]);
    fake.resolveAll();
    await drained.promise;
  });

  it("does not gather writes through different handles or with a gap", async () => {
    const { fake, writer } = setup();
    await writer.write("a", 0, Buffer.alloc(10));
    await writer.write("b", 10, Buffer.alloc(10));
    await writer.write("b", 30, Buffer.alloc(10));
    const drained = writer.settled();
    await settle();
    assert.deepEqual(
      fake.calls.map((c) => [c.via, c.offset]),
      [
        ["a", 0],
        ["b", 10],
        ["b", 30],
      ],
    );
    fake.resolveAll();
    await drained;
  });

  it("sends an overlapping write only after the one it overlaps has finished, in call order", async () => {
    const { fake, writer } = setup({ maxMessageBytes: 10 });
    await writer.write("h", 0, Buffer.alloc(10, 0xa)); // A: [0, 10), full: sent
    const b = track(writer.write("h", 5, Buffer.alloc(10, 0xb))); // B overlaps A
    const c = track(writer.write("h", 15, Buffer.alloc(10, 0xc))); // C overlaps B only
    await settle();
    assert.deepEqual(fake.offsets, [0], "only A may be in flight while B waits for it");
    assert.equal(b.done, false);
    fake.calls[0]!.resolve();
    for (let i = 0; i < 10 && fake.calls.length < 3; i++) {
      await settle();
      fake.calls.slice(1).forEach((call) => call.resolve());
    }
    await Promise.all([b.promise, c.promise]);
    await writer.drain();
    assert.deepEqual(fake.offsets, [0, 5, 15]);
  });

  it("never has more than maxInFlight messages in flight", async () => {
    const { fake, writer } = setup({ maxInFlight: 3, maxMessageBytes: 10 });
    const writes = Array.from({ length: 10 }, (_, i) => track(writer.write("h", i * 100, Buffer.alloc(10, i))));
    let finished = 0;
    for (let round = 0; round < 100 && finished < 10; round++) {
      await settle();
      const inFlight = fake.calls.length - finished;
      assert.ok(inFlight <= 3, `${inFlight} writes in flight`);
      if (inFlight > 0) {
        fake.calls[finished]!.resolve();
        finished += 1;
      }
    }
    assert.equal(finished, 10);
    await Promise.all(writes.map((w) => w.promise));
  });

  it("charges the memory budget until a write is acknowledged, and waits when it is full", async () => {
    const { fake, writer, budget } = setup({ maxMessageBytes: 10 }, 25);
    await writer.write("h", 0, Buffer.alloc(10));
    await writer.write("h", 10, Buffer.alloc(10));
    assert.equal(budget.usedBy("writeback"), 20);
    const third = track(writer.write("h", 20, Buffer.alloc(10)));
    await settle();
    assert.equal(third.done, false, "no room: waits");
    fake.calls[0]!.resolve();
    await third.promise;
    fake.resolveAll();
    await writer.settled();
    fake.resolveAll();
    await writer.drain();
    assert.equal(budget.usedBytes, 0);
  });

  it("reports the first error once, on the next write or drain, and that write's data still goes out", async () => {
    const { fake, writer } = setup({ maxMessageBytes: 10 });
    await writer.write("h", 0, Buffer.alloc(10));
    fake.calls[0]!.reject(new FsError(ERRNO.ENOSPC!, "full"));
    await settle();
    await assert.rejects(writer.write("h", 10, Buffer.from("0123456789")), { errno: ERRNO.ENOSPC });
    await writer.write("h", 20, Buffer.alloc(10));
    fake.resolveAll();
    await writer.drain();
    assert.deepEqual(fake.offsets, [0, 10, 20]);
    assert.equal(fake.calls[1]!.data.toString(), "0123456789");
  });
  it("an error is reported by the drain (fsync, close) when no write comes after it", async () => {
    const { fake, writer } = setup({ maxMessageBytes: 10 });
    await writer.write("h", 0, Buffer.alloc(10));
    fake.calls[0]!.reject(new FsError(ERRNO.EIO!, "lost"));
    await assert.rejects(writer.drain(), { errno: ERRNO.EIO });
    await writer.drain();
  });
});

describe("writableLength", () => {
  it("takes all below the file size limit, what fits across it, and refuses at or past it with EFBIG", () => {
    assert.equal(writableLength(0, 10, undefined), 10);
    assert.equal(writableLength(90, 5, 100), 5);
    assert.equal(writableLength(95, 10, 100), 5);
    assert.throws(() => writableLength(100, 1, 100), { errno: ERRNO.EFBIG });
    assert.throws(() => writableLength(2 ** 44, 1, 2 ** 44 - 4096), { errno: ERRNO.EFBIG });
  });
});

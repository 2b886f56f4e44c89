/**
 * The hardening pieces as pure logic, without a bus: admission control, fencing, the log limiter,
 * readdir page checks, streaming listings and client leases.
 */
import assert from "node:assert/strict";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { InstanceFence } from "../src/client/fence.js";
import { checkDirPage } from "../src/client/paging.js";
import { ERRNO, FsError } from "../src/protocol/index.js";
import { Admission, type AdmissionLimits, type Ticket } from "../src/server/admission.js";
import { O_PATH } from "../src/server/confine.js";
import { checkDeadline } from "../src/server/export.js";
import { ClientLeases, clientOf } from "../src/server/leases.js";
import { DirectoryListing } from "../src/server/listing.js";
import { LogLimiter } from "../src/server/log-limiter.js";

const LIMITS: AdmissionLimits = { perIdentityRequests: 2, perIdentityBytes: 1000, perIdentityQueue: 3, queuedBytes: 10_000, memoryBytes: 5000 };

function admission(limits: Partial<AdmissionLimits> = {}) {
  const events: string[] = [];
  const control = new Admission({ ...LIMITS, ...limits }, {
    queued: (identity) => events.push(`queued ${identity}`),
    refused: (identity, reason) => events.push(`refused ${identity} ${reason}`),
  });
  return { control, events };
}

describe("Admission", () => {
  it("admits up to the identity's bound, queues the rest and refuses beyond its queue", async () => {
    const { control, events } = admission();
    const first = (await control.admit("mallory", 10, 10))!;
    const second = (await control.admit("mallory", 10, 10))!;
    assert.ok(first && second);
    const waiting = [control.admit("mallory", 10, 10), control.admit("mallory", 10, 10), control.admit("mallory", 10, 10)];
    assert.equal(await control.admit("mallory", 10, 10), undefined, "a full queue refuses at once");
    assert.deepEqual(events.slice(-1), ["refused mallory queue_full"]);
    assert.equal(control.queuedRequests, 3);
    first.release();
    first.release(); // a second release is a no-op
    const third = (await waiting[0])!;
    assert.ok(third);
    assert.equal(control.queuedRequests, 2);
    second.release();
    third.release();
    for (const ticket of await Promise.all(waiting.slice(1))) ticket!.release();
    assert.equal(control.chargedBytes, 0);
  });

  it("lets another identity through while one floods, and serves queues in turn", async () => {
    const { control } = admission();
    const held: Ticket[] = [(await control.admit("mallory", 10, 10))!, (await control.admit("mallory", 10, 10))!];
    const mallorys = [control.admit("mallory", 10, 10), control.admit("mallory", 10, 10)];
    const alice = await control.admit("alice", 10, 10);
    assert.ok(alice, "alice is admitted at once, not queued behind mallory");
    alice.release();
    held[0]!.release();
    const next = (await mallorys[0])!;
    next.release();
    held[1]!.release();
    (await mallorys[1])!.release();
    assert.equal(control.chargedBytes, 0);
  });

  it("bounds bytes in flight per identity and for the process, and shares the budget with held handles", async () => {
    const { control } = admission({ perIdentityRequests: 100 });
    const big = (await control.admit("alice", 900, 10))!;
    let admitted = false;
    const pending = control.admit("alice", 200, 10).then((t) => ((admitted = true), t));
    await new Promise((r) => setImmediate(r));
    assert.equal(admitted, false, "900 + 200 bytes exceed alice's 1000");
    big.release();
    (await pending)!.release();
    assert.equal(control.hold(4000), true);
    assert.equal(control.hold(2000), false, "the process budget of 5000 is spent");
    const ticket = (await control.admit("bob", 500, 10))!;
    assert.ok(ticket);
    ticket.release();
    control.unhold(4000);
    assert.equal(control.chargedBytes, 0);
  });

  it("runs a request bigger than every bound when nothing else of its identity runs", async () => {
    const { control } = admission();
    const huge = await control.admit("alice", 1_000_000, 10);
    assert.ok(huge);
    huge.release();
  });
});

describe("InstanceFence", () => {
  it("tells when every unanswered attempt to an instance is certainly dead", () => {
    let now = 1000;
    const fence = new InstanceFence(500, () => now);
    assert.equal(fence.waitMs("i1"), 0);
    const answered = fence.sent("i1", 3000);
    fence.sent("i1", 2000); // never answered
    assert.equal(fence.clearAt("i1"), 3500);
    answered();
    assert.equal(fence.clearAt("i1"), 2500, "an answered attempt no longer holds the fence");
    now = 2400;
    assert.equal(fence.waitMs("i1"), 100);
    now = 2600;
    assert.equal(fence.waitMs("i1"), 0);
    assert.equal(fence.waitMs("i2"), 0, "other instances are not fenced");
    assert.equal(fence.deadAfter(4000), 4500);
  });
});

describe("checkDeadline", () => {
  it("refuses with ETIMEDOUT once the client's deadline has passed", () => {
    checkDeadline({ deadline: 100 }, 100);
    assert.throws(() => checkDeadline({ deadline: 100 }, 101), (err: FsError) => err.errno === ERRNO.ETIMEDOUT);
  });
});

describe("LogLimiter", () => {
  it("lets a burst through, then a few per second, and counts what it suppressed", () => {
    let now = 0;
    const suppressed: string[] = [];
    const limiter = new LogLimiter<"bad_path" | "no_grant">({ burst: 3, perSecond: 1 }, (kind) => suppressed.push(kind), () => now);
    const written = Array.from({ length: 100 }, () => limiter.admit("bad_path").write).filter(Boolean).length;
    assert.equal(written, 3);
    assert.equal(suppressed.length, 97);
    assert.equal(limiter.admit("no_grant").write, true, "each kind has its own bucket");
    now = 1000;
    assert.deepEqual(limiter.admit("bad_path"), { write: true, suppressed: 97 });
    assert.equal(limiter.admit("bad_path").write, false);
  });
});

describe("checkDirPage", () => {
  const page = (next?: number, count = 1) => ({ entries: Array.from({ length: count }, (_, i) => ({ name: `n${i}` })), ...(next === undefined ? {} : { next }) });
  it("accepts pages that move forward and the last page", () => {
    checkDirPage(page(5), 0, 0, 100);
    checkDirPage(page(), 5, 1, 100);
  });
  it("refuses a page that makes no progress, an empty middle page and an endless listing", () => {
    for (const [bad, offset] of [[page(0), 0], [page(3), 5], [page(Number.NaN), 0], [page(6, 0), 5]] as const) {
      assert.throws(() => checkDirPage(bad, offset, 0, 100), (err: FsError) => err.errno === ERRNO.EIO, JSON.stringify(bad));
    }
    assert.throws(() => checkDirPage(page(200, 10), 190, 95, 100), (err: FsError) => err.errno === ERRNO.EIO);
  });
  it("refuses entries that are not names a directory can hold", () => {
    for (const entries of [[0], [null], [{ name: "" }], [{ name: "a/b" }], [{ name: "x".repeat(256) }], [{ name: 7 }]]) {
      assert.throws(() => checkDirPage({ entries } as never, 0, 0, 100), (err: FsError) => err.errno === ERRNO.EIO, JSON.stringify(entries));
    }
  });
});

describe("DirectoryListing", () => {
  const dir = mkdtempSync(join(tmpdir(), "natsfs-listing-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("streams a large directory in pages with attributes, restarting on a seek", async () => {
    const names = Array.from({ length: 1500 }, (_, i) => `${"x".repeat(200)}-${i}`);
    mkdirSync(join(dir, "big"));
    for (const name of names) writeFileSync(join(dir, "big", name), name);
    const fd = openSync(join(dir, "big"), O_PATH | 0o200000);
    const listing = new DirectoryListing(fd);
    try {
      const seen: string[] = [];
      let offset: number | undefined = 0;
      let pages = 0;
      while (offset !== undefined) {
        const result = await listing.page(offset, 64 * 1024);
        for (const entry of result.entries) {
          seen.push(entry.name);
          if (entry.name !== "..") assert.ok(entry.stat, `attributes of ${entry.name}`);
          if (entry.name.startsWith("x")) assert.equal(entry.stat!.size, entry.name.length);
        }
        assert.ok(result.next === undefined || result.next > offset);
        offset = result.next;
        pages += 1;
      }
      assert.ok(pages > 3, `${pages} pages`);
      assert.deepEqual(seen.slice(0, 2), [".", ".."]);
      assert.deepEqual(seen.slice(2).sort(), [...names].sort());
      const again = await listing.page(2, 64 * 1024);
      assert.equal(again.entries[0]!.name, seen[2], "asking for an earlier offset restarts the stream there");
    } finally {
      await listing.close();
      closeSync(fd);
    }
  });
});

describe("ClientLeases", () => {
  it("lapses a client not heard from for a whole lease", () => {
    let now = 0;
    const leases = new ClientLeases(1000, () => now);
    leases.seen("c1");
    now = 900;
    assert.equal(leases.lapsed("c1"), false);
    now = 1001;
    assert.equal(leases.lapsed("c1"), true);
    assert.equal(leases.lapsed("never"), true);
    assert.equal(clientOf("abc:17"), "abc");
  });
});

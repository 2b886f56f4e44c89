import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync } from "node:fs";
import { describe, it } from "node:test";
import { ERRNO, FsError } from "../src/protocol/index.js";
import { parseArgs } from "../src/server/args.js";
import { ExportSpecError, openPolicy, parseExportSpec, parseExportSpecs } from "../src/server/config.js";
import { PathRefused, pathComponents } from "../src/server/confine.js";
import { DuplicateRequestCache } from "../src/server/drc.js";
import { HandleTable } from "../src/server/handles.js";
import { splitTimeNs, statTimespec } from "../src/protocol/index.js";
import { largestAccepted } from "../src/server/file-size-limit.js";

function errnoOfCall(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof FsError, `expected FsError, got ${String(err)}`);
    return err.errno;
  }
}

describe("pathComponents", () => {
  it("splits plain absolute paths", () => {
    assert.deepEqual(pathComponents("/"), []);
    assert.deepEqual(pathComponents("/a"), ["a"]);
    assert.deepEqual(pathComponents("/a/b c/.hidden/..x"), ["a", "b c", ".hidden", "..x"]);
  });

  it("refuses escapes and garbage with the right errno", () => {
    assert.equal(errnoOfCall(() => pathComponents("/..")), ERRNO.EACCES);
    assert.equal(errnoOfCall(() => pathComponents("/a/../../etc")), ERRNO.EACCES);
    assert.equal(errnoOfCall(() => pathComponents("/a/./b")), ERRNO.EINVAL);
    assert.equal(errnoOfCall(() => pathComponents("a/b")), ERRNO.EINVAL);
    assert.equal(errnoOfCall(() => pathComponents("")), ERRNO.EINVAL);
    assert.equal(errnoOfCall(() => pathComponents("//etc")), ERRNO.EINVAL);
    assert.equal(errnoOfCall(() => pathComponents("/a/")), ERRNO.EINVAL);
    assert.equal(errnoOfCall(() => pathComponents("/a\0b")), ERRNO.EINVAL);
  });

  it("enforces NAME_MAX in bytes and PATH_MAX", () => {
    assert.deepEqual(pathComponents(`/${"x".repeat(255)}`), ["x".repeat(255)]);
    assert.equal(errnoOfCall(() => pathComponents(`/${"x".repeat(256)}`)), ERRNO.ENAMETOOLONG);
    // 128 two-byte characters: 128 characters but 256 bytes
    assert.equal(errnoOfCall(() => pathComponents(`/${"é".repeat(128)}`)), ERRNO.ENAMETOOLONG);
    const deep = "/" + Array.from({ length: 1000 }, () => "abcd").join("/");
    assert.equal(errnoOfCall(() => pathComponents(deep)), ERRNO.ENAMETOOLONG);
  });

  it("marks refusals as PathRefused", () => {
    assert.throws(() => pathComponents("/.."), PathRefused);
  });
});

describe("--export parsing", () => {
  it("parses NAME=PATH and NAME=PATH:ro", () => {
    assert.deepEqual(parseExportSpec("home=/srv/home"), {
      name: "home",
      path: "/srv/home",
      readOnly: false,
      squash: "none",
      anonUid: 65534,
      anonGid: 65534,
    });
    const ro = parseExportSpec("public=/srv/pub lic:ro");
    assert.equal(ro.path, "/srv/pub lic");
    assert.equal(ro.readOnly, true);
    assert.equal(parseExportSpec("a=/x:rw").readOnly, false);
  });

  it("rejects bad specs", () => {
    for (const bad of ["home", "=/srv", "home=srv", "bad.name=/srv", "home=", "a b=/x"]) {
      assert.throws(() => parseExportSpec(bad), ExportSpecError, bad);
    }
    assert.throws(() => parseExportSpecs(["a=/x", "a=/y"]), /twice/);
  });

  it("open policy grants rw on rw exports and ro on :ro exports", () => {
    const policy = openPolicy(parseExportSpecs(["home=/h", "pub=/p:ro"]));
    assert.equal(policy.grant("anyone", "home"), "rw");
    assert.equal(policy.grant("anyone", "pub"), "ro");
    assert.equal(policy.grant("anyone", "other"), undefined);
  });
});

describe("argument validation", () => {
  it("accepts well-typed args and rejects wrong types", () => {
    assert.equal(parseArgs("getattr", { path: "/a" }).ok, true);
    assert.equal(parseArgs("write", { handle: 1, offset: 0, data: new Uint8Array(3) }).ok, true);
    assert.equal(parseArgs("getattr", { path: 5 }).ok, false);
    assert.equal(parseArgs("read", { handle: 1, offset: -1, length: 10 }).ok, false);
    assert.equal(parseArgs("read", { handle: 1.5, offset: 0, length: 10 }).ok, false);
    assert.equal(parseArgs("read", { handle: 1, offset: 0, length: 10 * 1024 * 1024 }).ok, false);
    assert.equal(parseArgs("write", { handle: 1, offset: 0, data: "text" }).ok, false);
    assert.equal(parseArgs("rename", { from: "/a" }).ok, false);
    assert.equal(parseArgs("chown", { path: "/a", uid: -1, gid: -1 }).ok, true);
  });
});

describe("DuplicateRequestCache", () => {
  it("runs once and answers retries from the cache", async () => {
    const cache = new DuplicateRequestCache<string>(10, 1000);
    let runs = 0;
    const execute = async () => `reply ${++runs}`;
    assert.deepEqual(await cache.run("k", execute), { reply: "reply 1", hit: false });
    assert.deepEqual(await cache.run("k", execute), { reply: "reply 1", hit: true });
    assert.equal(runs, 1);
  });

  it("coalesces a retry that arrives while the first is still running", async () => {
    const cache = new DuplicateRequestCache<string>(10, 1000);
    let release!: (value: string) => void;
    let runs = 0;
    const execute = () => {
      runs += 1;
      return new Promise<string>((resolve) => (release = resolve));
    };
    const first = cache.run("k", execute);
    const second = cache.run("k", execute);
    release("done");
    assert.deepEqual(await first, { reply: "done", hit: false });
    assert.deepEqual(await second, { reply: "done", hit: true });
    assert.equal(runs, 1);
  });

  it("expires entries after the TTL and evicts the oldest beyond capacity", async () => {
    let now = 0;
    const cache = new DuplicateRequestCache<number>(2, 100, () => now);
    await cache.run("a", async () => 1);
    now = 150;
    assert.deepEqual(await cache.run("a", async () => 2), { reply: 2, hit: false });
    await cache.run("b", async () => 3);
    await cache.run("c", async () => 4);
    assert.equal(cache.size, 2);
    assert.deepEqual(await cache.run("a", async () => 5), { reply: 5, hit: false });
  });

  it("does not cache a failure to produce a reply", async () => {
    const cache = new DuplicateRequestCache<number>(10, 1000);
    await assert.rejects(cache.run("k", async () => Promise.reject(new Error("boom"))));
    assert.deepEqual(await cache.run("k", async () => 7), { reply: 7, hit: false });
  });
});

describe("splitTimeNs and statTimespec", () => {
  it("carry a time to the nanosecond, before 1970 too", () => {
    assert.deepEqual(splitTimeNs(1_123_456_789n), { ms: 1_123, nsec: 123_456_789 });
    assert.deepEqual(statTimespec(1_123, 123_456_789), { sec: 1, nsec: 123_456_789 });
    assert.deepEqual(splitTimeNs(-1n), { ms: -1, nsec: 999_999_999 });
    assert.deepEqual(statTimespec(-1, 999_999_999), { sec: -1, nsec: 999_999_999 });
    assert.deepEqual(statTimespec(1_500.25, undefined), { sec: 1, nsec: 500_250_000 }, "an older server's milliseconds");
  });
});

describe("largestAccepted", () => {
  it("finds the edge of a monotone predicate in at most 54 calls", async () => {
    for (const edge of [0, 1, 2 ** 44 - 4096, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]) {
      let calls = 0;
      const found = await largestAccepted(async (n) => (calls++, n <= edge));
      assert.equal(found, edge);
      assert.ok(calls <= 54, `${calls} calls`);
    }
  });
});

describe("HandleTable", () => {
  const fileEntry = (identity = "alice") => ({ kind: "file" as const, fd: openSync("/dev/null", "r"), path: "/f", flags: 0, identity, client: "c1" });
  const isOpen = (fd: number) => {
    try {
      fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };

  /** A budget that never refuses, counting what it holds. */
  const budget = () => {
    const held = { bytes: 0, hold: (n: number) => ((held.bytes += n), true), unhold: (n: number) => void (held.bytes -= n) };
    return held;
  };
  const limits = (perExport: number, perIdentity = perExport) => ({ perExport, perIdentity, bytesPerHandle: 100 });

  it("hands out handles per identity and kind", async () => {
    const table = new HandleTable(limits(4), budget(), () => {});
    const entry = fileEntry();
    const handle = table.add(entry);
    assert.equal(table.get(handle, "file", "alice"), entry);
    assert.throws(() => table.get(handle, "file", "bob"), (err: FsError) => err.errno === ERRNO.ESTALE);
    assert.throws(() => table.get(handle, "dir", "alice"), (err: FsError) => err.errno === ERRNO.ENOTDIR);
    assert.throws(() => table.get(handle + 1, "file", "alice"), (err: FsError) => err.errno === ERRNO.ESTALE);
    await table.remove(handle, "file", "alice");
    assert.equal(isOpen(entry.fd), false);
  });

  it("closes the least recently used idle handle when full, ENFILE when all are busy", async () => {
    const evicted: string[] = [];
    const table = new HandleTable(limits(2), budget(), () => {}, (entry) => evicted.push(entry.path));
    const first = { ...fileEntry(), path: "/first" };
    const second = { ...fileEntry(), path: "/second" };
    const a = table.add(first);
    const b = table.add(second);
    table.get(a, "file", "alice"); // a is now more recent than b
    const c = table.add(fileEntry());
    assert.deepEqual(evicted, ["/second"]);
    assert.throws(() => table.get(b, "file", "alice"), (err: FsError) => err.errno === ERRNO.ESTALE);

    let finish!: () => void;
    const busyA = table.use(a, "file", "alice", () => new Promise<void>((resolve) => (finish = resolve)));
    const busyC = table.use(c, "file", "alice", async () => {
      assert.throws(() => table.add(fileEntry()), (err: FsError) => err.errno === ERRNO.ENFILE);
    });
    await busyC;
    // Released while an op still uses it: the fd stays open until that op is done.
    await table.remove(a, "file", "alice");
    assert.equal(isOpen(first.fd), true);
    finish();
    await busyA;
    assert.equal(isOpen(first.fd), false);
    await table.closeAll();
    assert.equal(table.size, 0);
  });

  it("bounds each identity on its own: a flooding identity evicts only its own handles", async () => {
    const held = budget();
    const table = new HandleTable(limits(8, 3), held, () => {});
    const bobs = [table.add({ ...fileEntry(), identity: "bob" }), table.add({ ...fileEntry(), identity: "bob" })];
    for (let i = 0; i < 50; i++) table.add({ ...fileEntry(), identity: "alice" });
    assert.equal(table.size, 5, "alice holds at most 3, bob keeps his 2");
    for (const handle of bobs) table.get(handle, "file", "bob");
    assert.equal(held.bytes, 500, "every handle is charged to the budget, and evicted ones are given back");
    await table.closeAll();
    assert.equal(held.bytes, 0);
  });

  it("refuses a handle with ENFILE when the process budget is spent", () => {
    const table = new HandleTable(limits(8), { hold: () => false, unhold: () => {} }, () => {});
    const entry = fileEntry();
    assert.throws(() => table.add(entry), (err: FsError) => err.errno === ERRNO.ENFILE);
    closeSync(entry.fd);
  });

  it("reclaims the idle handles of clients whose lease lapsed", async () => {
    const table = new HandleTable(limits(8), budget(), () => {});
    table.add({ ...fileEntry(), client: "gone" });
    const kept = table.add({ ...fileEntry(), client: "alive" });
    const busy = table.add({ ...fileEntry(), client: "gone" });
    let finish!: () => void;
    const using = table.use(busy, "file", "alice", () => new Promise<void>((resolve) => (finish = resolve)));
    assert.equal(table.reclaim((client) => client === "gone"), 1, "a handle in use is not reclaimed under its op");
    assert.equal(table.owner(kept, "alice"), "alive");
    finish();
    await using;
    assert.equal(table.reclaim((client) => client === "gone"), 1);
    assert.equal(table.size, 1);
    await table.closeAll();
  });
});

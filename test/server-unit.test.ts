import assert from "node:assert/strict";
import { fstatSync, openSync } from "node:fs";
import { describe, it } from "node:test";
import { ERRNO, FsError } from "../src/protocol/index.js";
import { parseArgs } from "../src/server/args.js";
import { ExportSpecError, openPolicy, parseExportSpec, parseExportSpecs } from "../src/server/config.js";
import { PathRefused, pathComponents } from "../src/server/confine.js";
import { DuplicateRequestCache } from "../src/server/drc.js";
import { HandleTable } from "../src/server/handles.js";
import { mkfifoErrno, utimeSeconds } from "../src/server/export.js";

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

describe("mkfifoErrno", () => {
  it("maps mkfifo's messages", () => {
    assert.equal(mkfifoErrno("mkfifo: cannot create fifo 'x': File exists\n"), ERRNO.EEXIST);
    assert.equal(mkfifoErrno("mkfifo: cannot create fifo 'x': No space left on device\n"), ERRNO.ENOSPC);
    assert.equal(mkfifoErrno("something else"), ERRNO.EIO);
  });
});

describe("utimeSeconds", () => {
  it("survives libuv's truncation to nanoseconds as the same millisecond", () => {
    for (let ms = 1_400_086_400_000; ms < 1_400_086_401_000; ms += 1) {
      for (const base of [ms, ms + 2_000_000_000_000]) {
        // What uv_fs_lutime does with the double: whole seconds, then truncated nanoseconds.
        const seconds = utimeSeconds(base);
        const whole = Math.trunc(seconds);
        const nanos = Math.trunc((seconds - whole) * 1e9);
        assert.equal(whole * 1000 + Math.floor(nanos / 1e6), base);
      }
    }
  });
});

describe("HandleTable", () => {
  const fileEntry = (identity = "alice") => ({ kind: "file" as const, fd: openSync("/dev/null", "r"), path: "/f", flags: 0, identity });
  const isOpen = (fd: number) => {
    try {
      fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };

  it("hands out handles per identity and kind", async () => {
    const table = new HandleTable(4, () => {});
    const entry = fileEntry();
    const handle = table.add(entry);
    assert.equal(table.get(handle, "file", "alice"), entry);
    assert.throws(() => table.get(handle, "file", "bob"), (err: FsError) => err.errno === ERRNO.ESTALE);
    assert.throws(() => table.get(handle, "dir", "alice"), (err: FsError) => err.errno === ERRNO.ENOTDIR);
    assert.throws(() => table.get(handle + 1, "file", "alice"), (err: FsError) => err.errno === ERRNO.ESTALE);
    await table.remove(handle, "file", "alice");
    assert.equal(isOpen(entry.fd), false);
  });

  it("closes the least recently used idle handle when full, EMFILE when all are busy", async () => {
    const evicted: string[] = [];
    const table = new HandleTable(2, () => {}, (entry) => evicted.push(entry.path));
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
      assert.throws(() => table.add(fileEntry()), (err: FsError) => err.errno === ERRNO.EMFILE);
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
});

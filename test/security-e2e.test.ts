import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import {
  appendFile,
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rmdir,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getAttribute, removeAttribute, setAttribute } from "fs-xattr";
import type { NatsConnection, NatsError } from "nats";
import { ERRNO, OPS, opsWhere, requestSubject, type OpName } from "../src/protocol/index.js";
import { run } from "./helpers/mount.js";
import { outcome, rawRequest, snapshotTree, startTlsStack, within, type TlsMount, type TlsStack } from "./helpers/tls-stack.js";

/**
 * End-to-end security over mutual TLS with a policy: what a rw, a ro and an ungranted identity can
 * do through a FUSE mount and straight on the bus. The bus-level basics (inbox isolation, forged
 * replies, queue subjects of an ungranted export) are in security-bus.test.ts; this file adds the
 * live server, the mounts and the instance subjects.
 */

const MUTATING_OPS = opsWhere((spec) => spec.mutating);
const FIXTURE_BYTES = randomBytes(10_000);

/** Plausible arguments for every mutating op, aimed at the fixture (never reach the disk if refused). */
function mutatingArgs(op: OpName): Record<string, unknown> {
  const owner = { uid: 0, gid: 0 };
  switch (op) {
    case "openw": return { path: "/file.txt", flags: 2 };
    case "create": return { path: "/created.txt", flags: 65, mode: 0o644, owner };
    case "write": return { handle: 1, offset: 0, data: new Uint8Array([1, 2, 3]) };
    case "fsync": return { handle: 1, datasync: false };
    case "ftruncate": return { handle: 1, size: 0 };
    case "fallocate": return { handle: 1, mode: 0, offset: 0, length: 4096 };
    case "truncate": return { path: "/file.txt", size: 0 };
    case "unlink": return { path: "/file.txt" };
    case "rename": return { from: "/file.txt", to: "/renamed.txt" };
    case "mkdir": return { path: "/newdir", mode: 0o755, owner };
    case "rmdir": return { path: "/emptydir" };
    case "symlink": return { target: "file.txt", path: "/newlink", owner };
    case "link": return { from: "/file.txt", to: "/hardlink" };
    case "mknod": return { path: "/fifo", mode: 0o10644, rdev: 0, owner };
    case "chmod": return { path: "/file.txt", mode: 0o777 };
    case "chown": return { path: "/file.txt", uid: 1234, gid: 1234 };
    case "utimens": return { path: "/file.txt", atime: { sec: 0, nsec: 0 }, mtime: { sec: 0, nsec: 0 } };
    case "setxattr": return { path: "/file.txt", name: "user.tag", value: new Uint8Array([9]), flags: 0 };
    case "removexattr": return { path: "/file.txt", name: "user.tag" };
    default: throw new Error(`no arguments for ${op}`);
  }
}

/** Fills an export with a file (with an xattr), a directory, an empty directory and a symlink. */
function writeFixture(dir: string): void {
  writeFileSync(join(dir, "file.txt"), FIXTURE_BYTES);
  mkdirSync(join(dir, "dir"));
  writeFileSync(join(dir, "dir", "inner.txt"), "inner\n");
  mkdirSync(join(dir, "emptydir"));
  symlinkSync("file.txt", join(dir, "link"));
}

/** How each raw request as `nc` on both subject forms ended: a NATS error code or the reply's errno name. */
async function rawOutcomes(nc: NatsConnection, exportName: string, identity: string, instance: string, ops: readonly OpName[]): Promise<Record<string, string>> {
  const outcomes: Record<string, string> = {};
  for (const op of ops) {
    for (const target of [undefined, instance]) {
      const subject = requestSubject(exportName, identity, op, target);
      const result = await rawRequest(nc, subject, mutatingArgs(op), 5_000);
      outcomes[subject] = "code" in result ? result.code : result.reply.errno === 0 ? "ok" : errnoLabel(result.reply.errno);
    }
  }
  return outcomes;
}

function errnoLabel(errno: number): string {
  return Object.entries(ERRNO).find(([, value]) => value === errno)?.[0] ?? String(errno);
}

describe("security end to end over mutual TLS with a policy", () => {
  let stack: TlsStack;

  before(async () => {
    stack = await startTlsStack();
    writeFixture(stack.exportDirs.home);
    writeFileSync(join(stack.exportDirs.secret, "plans.txt"), "secret plans\n");
  });
  after(async () => {
    await stack?.teardown();
  });

  describe("alice (rw on home)", () => {
    let alice: TlsMount;
    before(async () => {
      alice = await stack.mount("alice", "home");
    });

    it("creates, writes, reads, renames, makes directories and symlinks, changes modes and unlinks", async () => {
      const m = (name: string) => join(alice.mountpoint, name);
      const disk = (name: string) => join(stack.exportDirs.home, name);
      const data = randomBytes(300_000);
      await within(20_000, "write", writeFile(m("a.bin"), data));
      assert.ok(readFileSync(disk("a.bin")).equals(data), "bytes on the server's disk");
      assert.ok((await within(20_000, "read", readFile(m("a.bin")))).equals(data), "bytes read back through the mount");
      await appendFile(m("a.bin"), "tail");
      assert.equal(readFileSync(disk("a.bin")).length, data.length + 4);

      await rename(m("a.bin"), m("b.bin"));
      assert.deepEqual((await readdir(stack.exportDirs.home)).filter((n) => n.endsWith(".bin")), ["b.bin"]);
      await mkdir(m("made"), { mode: 0o750 });
      assert.ok((await lstat(disk("made"))).isDirectory());
      await symlink("../b.bin", m("made/to-b"));
      assert.equal(await readlink(disk("made/to-b")), "../b.bin");
      assert.ok((await readFile(m("made/to-b"))).subarray(0, 10).equals(data.subarray(0, 10)), "the kernel follows the symlink");
      await chmod(m("b.bin"), 0o600);
      assert.equal((await lstat(disk("b.bin"))).mode & 0o777, 0o600);
      await unlink(m("made/to-b"));
      await unlink(m("b.bin"));
      await rmdir(m("made"));
      assert.deepEqual((await readdir(stack.exportDirs.home)).sort(), ["dir", "emptydir", "file.txt", "link"]);
    });
  });

  describe("bob (ro on home)", () => {
    let bob: TlsMount;
    let bobNc: NatsConnection;
    before(async () => {
      await setAttribute(join(stack.exportDirs.home, "file.txt"), "user.tag", Buffer.from("tagged"));
      bob = await stack.mount("bob", "home");
      bobNc = await stack.connectAs("bob");
    });

    it("reads files, directories, symlinks and xattrs", async () => {
      const m = (name: string) => join(bob.mountpoint, name);
      assert.ok((await within(20_000, "read", readFile(m("file.txt")))).equals(FIXTURE_BYTES));
      assert.deepEqual((await readdir(bob.mountpoint)).sort(), ["dir", "emptydir", "file.txt", "link"]);
      assert.equal(await readFile(m("dir/inner.txt"), "utf8"), "inner\n");
      assert.equal(await readlink(m("link")), "file.txt");
      assert.equal((await getAttribute(m("file.txt"), "user.tag")).toString(), "tagged");
      // fsync of a read-only descriptor is legal and must not ask for a write permission.
      const readOnly = await open(m("file.txt"), "r");
      try {
        await readOnly.sync();
      } finally {
        await readOnly.close();
      }
    });

    it("refuses every mutating op through the mount and straight on the bus, and the export stays unchanged", async (t) => {
      const before = await snapshotTree(stack.exportDirs.home);
      const m = (name: string) => join(bob.mountpoint, name);
      const attempts: Record<string, () => Promise<unknown>> = {
        "create": () => writeFile(m("new.txt"), "x"),
        "open for writing": async () => {
          const handle = await open(m("file.txt"), "r+");
          try {
            await handle.write("overwrite", 0);
            await handle.sync();
          } finally {
            await handle.close();
          }
        },
        "append": () => appendFile(m("file.txt"), "more"),
        "truncate": () => truncate(m("file.txt"), 0),
        "mkdir": () => mkdir(m("newdir")),
        "rmdir": () => rmdir(m("emptydir")),
        "unlink": () => unlink(m("file.txt")),
        "rename": () => rename(m("file.txt"), m("moved.txt")),
        "rename a directory": () => rename(m("dir"), m("dir2")),
        "symlink": () => symlink("file.txt", m("newlink")),
        "link": () => link(m("file.txt"), m("hardlink")),
        "chmod": () => chmod(m("file.txt"), 0o777),
        "chown": () => chown(m("file.txt"), 1234, 1234),
        "utimes": () => utimes(m("file.txt"), new Date(0), new Date(0)),
        "setxattr": () => setAttribute(m("file.txt"), "user.other", Buffer.from("x")),
        "replace an xattr": () => setAttribute(m("file.txt"), "user.tag", Buffer.from("changed")),
        "removexattr": () => removeAttribute(m("file.txt"), "user.tag"),
      };
      const results: Record<string, string> = {};
      for (const [what, attempt] of Object.entries(attempts)) results[what] = await outcome(attempt(), what);
      const fifo = await run("mkfifo", [m("fifo")], { timeoutMs: 20_000 });
      results["mkfifo"] = fifo.code === 0 ? "ok" : fifo.timedOut ? "timed out" : fifo.stderr.trim();
      const mknod = await run("mknod", [m("node"), "p"], { timeoutMs: 20_000 });
      results["mknod"] = mknod.code === 0 ? "ok" : mknod.timedOut ? "timed out" : mknod.stderr.trim();

      t.diagnostic(`through bob's mount: ${JSON.stringify(results)}`);
      const refused = (result: string) => result === "EROFS" || result === "EACCES" || /Read-only file system|Permission denied/.test(result);
      const wrong = Object.entries(results).filter(([, result]) => !refused(result));
      assert.deepEqual(wrong, [], `through bob's mount: ${JSON.stringify(results, null, 1)}\n${stack.logs()}`);

      const raw = await rawOutcomes(bobNc, "home", "bob", stack.instance, MUTATING_OPS);
      assert.equal(Object.keys(raw).length, MUTATING_OPS.length * 2);
      t.diagnostic(`raw as bob: ${JSON.stringify(Object.values(raw).reduce<Record<string, number>>((mix, r) => ({ ...mix, [r]: (mix[r] ?? 0) + 1 }), {}))}`);
      const leaked = Object.entries(raw).filter(([, result]) => result !== "PERMISSIONS_VIOLATION" && result !== "EROFS");
      assert.deepEqual(leaked, [], "raw mutating requests as bob");

      assert.deepEqual(await snapshotTree(stack.exportDirs.home), before, "the export changed");
      // Reads still work after all that: the refusals did not break bob's connection or mount.
      assert.ok((await readFile(m("file.txt"))).equals(FIXTURE_BYTES));
    });

    it("keeps bob off the secret export's instance subject, also in alice's name", async () => {
      for (const op of ["getattr", "open", "opendir", "mkdir"] as const) {
        for (const identity of ["bob", "alice"]) {
          const result = await rawRequest(bobNc, requestSubject("secret", identity, op, stack.instance), { path: "/" }, 5_000);
          assert.deepEqual(result, { code: "PERMISSIONS_VIOLATION" }, `${op} on secret as ${identity} via the instance subject`);
        }
      }
      // The same requests from alice reach the live server: the refusals above are bob's permissions.
      const alice = await stack.connectAs("alice");
      const allowed = await rawRequest(alice, requestSubject("secret", "alice", "getattr", stack.instance), { path: "/plans.txt" });
      assert.ok("reply" in allowed && allowed.reply.errno === 0, JSON.stringify(allowed));
    });

    it("does not let bob listen to requests on the bus", async () => {
      for (const subject of ["natsfs.>", "natsfs.home.alice.>", "natsfs.secret.*.*", "_INBOX_alice.>", ">"]) {
        const spy = bobNc.subscribe(subject);
        await assert.rejects(
          within(5000, `bob's subscription to ${subject}`, (async () => { for await (const _ of spy) assert.fail(`bob read ${subject}`); })()),
          (err: NatsError) => err.code === "PERMISSIONS_VIOLATION",
          subject,
        );
      }
    });
  });

  describe("carol (known to the bus, no grant for home)", () => {
    it("cannot mount home: the mount exits non-zero and names the missing grant", async () => {
      const result = await stack.refusedMount("carol", "home");
      assert.equal(result.timedOut, false, "the refused mount hung");
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /identity "carol" has no grant for export "home"/, result.stderr);
    });

    it("cannot reach home over NATS, in her name or anyone else's", async () => {
      const carol = await stack.connectAs("carol");
      const ops: OpName[] = ["getattr", "open", "opendir", "read", "mkdir", "create"];
      for (const op of ops) {
        for (const identity of ["carol", "alice"]) {
          for (const target of [undefined, stack.instance]) {
            const subject = requestSubject("home", identity, op, target);
            const args = OPS[op].handleBound ? { handle: 1, offset: 0, length: 10 } : mutatingArgsOrPath(op);
            assert.deepEqual(await rawRequest(carol, subject, args, 5_000), { code: "PERMISSIONS_VIOLATION" }, subject);
          }
        }
      }
    });
  });
});

function mutatingArgsOrPath(op: OpName): Record<string, unknown> {
  return OPS[op].mutating ? mutatingArgs(op) : { path: "/file.txt", flags: 0 };
}

describe("the server enforces the policy even when the bus lets a request through", () => {
  let stack: TlsStack;
  before(async () => {
    // A bus misconfigured to let bob publish anything under natsfs.
    stack = await startTlsStack({ widen: { bob: ["natsfs.>"] } });
    writeFixture(stack.exportDirs.home);
    await setAttribute(join(stack.exportDirs.home, "file.txt"), "user.tag", Buffer.from("tagged"));
  });
  after(async () => {
    await stack?.teardown();
  });

  it("answers bob's mutating requests with EROFS and his requests on secret with EACCES", async () => {
    const before = await snapshotTree(stack.exportDirs.home);
    const beforeSecret = await snapshotTree(stack.exportDirs.secret);
    const bob = await stack.connectAs("bob");
    const raw = await rawOutcomes(bob, "home", "bob", stack.instance, MUTATING_OPS);
    const notRofs = Object.entries(raw).filter(([, result]) => result !== "EROFS");
    assert.deepEqual(notRofs, [], "every mutating op as bob reaches the server and is refused as read-only");

    const secret = await rawOutcomes(bob, "secret", "bob", stack.instance, ["mkdir", "create", "unlink"]);
    for (const op of ["getattr", "opendir"] as const) {
      for (const target of [undefined, stack.instance]) {
        const result = await rawRequest(bob, requestSubject("secret", "bob", op, target), { path: "/" });
        secret[requestSubject("secret", "bob", op, target)] = "code" in result ? result.code : errnoLabel(result.reply.errno);
      }
    }
    assert.deepEqual(Object.entries(secret).filter(([, r]) => r !== "EACCES"), [], "no grant on secret");
    assert.deepEqual(await snapshotTree(stack.exportDirs.home), before);
    assert.deepEqual(await snapshotTree(stack.exportDirs.secret), beforeSecret);
  });
});

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, constants, lstatSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, chown, open, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "nats";
import { errnoName, requestSubject, type OpName } from "../src/protocol/index.js";
import { runAs } from "./helpers/mount.js";
import { outcome, rawRequest, startTlsStack, type ExportName, type TlsMount, type TlsStack } from "./helpers/tls-stack.js";

/**
 * Squash holds on existing objects (issue 9, item 8): a squashed request gets the rights its user
 * would have on a local disk, although the server runs as root. Each case goes both through a FUSE
 * mount (run as root, so the client's kernel lets everything through to the server) and as raw
 * requests on the bus (a hostile client that skips its kernel's checks).
 */

const ANON = 65534;
const USER = 1000;
const SECRET_BYTES = randomBytes(4096);
const { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC } = constants;

/**
 * Root's files an export starts with: a root-owned "binary", a 0600 secret, a user's and anon's own
 * folders, and an open folder and file inside root's private (0700) one.
 */
function writeRootFiles(dir: string): void {
  writeFileSync(join(dir, "tool"), "#!/bin/sh\necho admin\n", { mode: 0o755 });
  chmodSync(join(dir, "tool"), 0o755);
  writeFileSync(join(dir, "secret.txt"), SECRET_BYTES, { mode: 0o600 });
  chmodSync(join(dir, "secret.txt"), 0o600);
  mkdirSync(join(dir, "user"), { mode: 0o755 });
  chownSync(join(dir, "user"), USER, USER);
  mkdirSync(join(dir, "anon"), { mode: 0o755 });
  chownSync(join(dir, "anon"), ANON, ANON);
  mkdirSync(join(dir, "private", "open"), { recursive: true, mode: 0o755 });
  chmodSync(join(dir, "private"), 0o700);
  writeFileSync(join(dir, "private", "open", "file.txt"), "private\n", { mode: 0o644 });
}

function assertUntouched(dir: string): void {
  const tool = lstatSync(join(dir, "tool"));
  assert.equal(tool.mode & 0o7777, 0o755, "tool's mode changed");
  assert.deepEqual([tool.uid, tool.gid], [0, 0], "tool's owner changed");
  const secret = lstatSync(join(dir, "secret.txt"));
  assert.equal(secret.mode & 0o7777, 0o600, "secret's mode changed");
  assert.deepEqual([secret.uid, secret.gid], [0, 0], "secret's owner changed");
  assert.ok(readFileSync(join(dir, "secret.txt")).equals(SECRET_BYTES), "secret.txt's bytes changed");
}

/** The errno name of one raw request as alice (rw on both exports), "ok" on success. */
async function raw(nc: NatsConnection, exportName: ExportName, op: OpName, args: Record<string, unknown>): Promise<string> {
  const answer = await rawRequest(nc, requestSubject(exportName, "alice", op), args);
  if ("code" in answer) throw new Error(`${op}: no reply (${answer.code})`);
  return answer.reply.errno === 0 ? "ok" : errnoName(answer.reply.errno);
}

describe("squash all and squash root on existing objects", { timeout: 120_000 }, () => {
  let stack: TlsStack;
  let nc: NatsConnection;
  const mounts = {} as Record<ExportName, TlsMount>;

  before(async () => {
    stack = await startTlsStack({ squash: { home: "all", secret: "root" } });
    for (const name of ["home", "secret"] as const) writeRootFiles(stack.exportDirs[name]);
    mounts.home = await stack.mount("alice", "home");
    mounts.secret = await stack.mount("alice", "secret");
    nc = await stack.connectAs("alice");
  });
  after(async () => {
    await stack?.teardown();
  });

  it("squash all: chmod 4755 or 06777 of root's binary is EPERM (mount and raw)", async () => {
    const tool = join(mounts.home.mountpoint, "tool");
    assert.equal(await outcome(chmod(tool, 0o4755), "chmod 4755"), "EPERM");
    assert.equal(await outcome(chmod(tool, 0o6777), "chmod 06777"), "EPERM");
    for (const caller of [undefined, { uid: 0, gid: 0 }]) {
      assert.equal(await raw(nc, "home", "chmod", { path: "/tool", mode: 0o4755, caller }), "EPERM");
      assert.equal(await raw(nc, "home", "chmod", { path: "/tool", mode: 0o6777, caller }), "EPERM");
    }
    assertUntouched(stack.exportDirs.home);
  });

  it("squash all: nothing below root's 0700 folder is reachable, however open what is inside (mount and raw)", async () => {
    const inside = join(mounts.home.mountpoint, "private", "open", "file.txt");
    assert.equal(await outcome(readFile(inside), "read"), "EACCES");
    assert.equal(await outcome(stat(inside), "stat"), "EACCES");
    for (const path of ["/private/open", "/private/open/file.txt"]) {
      assert.equal(await raw(nc, "home", "getattr", { path }), "EACCES", path);
    }
    assert.equal(await raw(nc, "home", "open", { path: "/private/open/file.txt", flags: constants.O_RDONLY }), "EACCES");
    assert.equal(await raw(nc, "home", "opendir", { path: "/private/open" }), "EACCES");
    assert.equal(await raw(nc, "home", "getattr", { path: "/private" }), "ok", "the folder itself is visible, as with ls -l");
  });

  it("squash all: the anonymous user's own files are its own to change", async () => {
    const own = join(mounts.home.mountpoint, "anon", "own");
    await writeFile(own, "mine");
    await chmod(own, 0o4750);
    const stats = lstatSync(join(stack.exportDirs.home, "anon", "own"));
    assert.deepEqual([stats.uid, stats.gid, stats.mode & 0o7777], [ANON, ANON, 0o4750]);
    assert.equal(await outcome(chown(own, USER, -1), "give away"), "EPERM");
  });

  it("squash all: root's 0600 file cannot be opened for writing, overwritten or truncated (mount and raw)", async () => {
    const secret = join(mounts.home.mountpoint, "secret.txt");
    assert.equal(await outcome(writeFile(secret, "overwritten"), "overwrite"), "EACCES");
    assert.equal(await outcome(open(secret, "r+").then((h) => h.close()), "open r+"), "EACCES");
    assert.equal(await outcome(open(secret, "r").then((h) => h.close()), "open r"), "EACCES", "anon cannot read a 0600 file either");
    assert.equal(await outcome(truncate(secret, 0), "truncate"), "EACCES");
    const caller = { uid: 0, gid: 0 };
    assert.equal(await raw(nc, "home", "openw", { path: "/secret.txt", flags: O_WRONLY, caller }), "EACCES");
    assert.equal(await raw(nc, "home", "openw", { path: "/secret.txt", flags: O_RDWR | O_TRUNC, caller }), "EACCES");
    assert.equal(await raw(nc, "home", "create", { path: "/secret.txt", flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644, owner: caller }), "EACCES");
    assert.equal(await raw(nc, "home", "truncate", { path: "/secret.txt", size: 0, caller }), "EACCES");
    assert.equal(await raw(nc, "home", "utimens", { path: "/secret.txt", atime: { sec: 0, nsec: 0 }, mtime: "omit", caller }), "EPERM");
    assert.equal(await raw(nc, "home", "unlink", { path: "/secret.txt", caller }), "EACCES", "root's 0755 export root is not anon's to change");
    assert.equal(await raw(nc, "home", "rename", { from: "/secret.txt", to: "/user/stolen", caller }), "EACCES");
    assert.equal(await raw(nc, "home", "setxattr", { path: "/secret.txt", name: "user.x", value: new Uint8Array([1]), flags: 0, caller }), "EACCES");
    assertUntouched(stack.exportDirs.home);
  });

  it("squash root: chown of root's file to 1000 is EPERM (mount and raw), and root's chmod too", async () => {
    const secret = join(mounts.secret.mountpoint, "secret.txt");
    assert.equal(await outcome(chown(secret, USER, USER), "chown"), "EPERM");
    assert.equal(await outcome(chmod(join(mounts.secret.mountpoint, "tool"), 0o4755), "chmod"), "EPERM");
    for (const caller of [undefined, { uid: 0, gid: 0 }, { uid: USER, gid: USER }]) {
      assert.equal(await raw(nc, "secret", "chown", { path: "/secret.txt", uid: USER, gid: USER, caller }), "EPERM");
    }
    assert.equal(await outcome(writeFile(secret, "overwritten"), "overwrite"), "EACCES");
    assertUntouched(stack.exportDirs.secret);
  });

  it("squash root: a normal user keeps working in its own folder", async () => {
    const userDir = join(mounts.secret.mountpoint, "user");
    const script = [
      "set -e",
      `cd ${userDir}`,
      "mkdir d && echo hello > d/f && cat d/f",
      "chmod 600 d/f && mv d/f d/g && ln d/g d/h && ln -s g d/s && touch d/g && touch -d @1000000000 d/g",
      "truncate -s 2 d/g && cat d/g && echo",
      "rm d/g d/h d/s && rmdir d",
      // Root's files in the export stay root's.
      "! chmod 666 ../secret.txt 2>/dev/null",
      "echo done",
    ].join("\n");
    const result = await runAs(USER, USER, "sh", ["-c", script], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${stack.logs().slice(-3000)}`);
    assert.equal(result.stdout, "hello\nhe\ndone\n");
    assertUntouched(stack.exportDirs.secret);
  });
});

describe("squash none keeps today's trust", { timeout: 120_000 }, () => {
  let stack: TlsStack;
  let mount: TlsMount;

  before(async () => {
    stack = await startTlsStack();
    writeRootFiles(stack.exportDirs.home);
    mount = await stack.mount("alice", "home");
  });
  after(async () => {
    await stack?.teardown();
  });

  it("a normal user works in its own folder with its own ids", async () => {
    const script = [
      "set -e",
      `cd ${join(mount.mountpoint, "user")}`,
      "echo hello > f && chmod 640 f && mv f g && stat -c '%u:%g %a' g && rm g",
    ].join("\n");
    const result = await runAs(USER, USER, "sh", ["-c", script], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.equal(result.stdout, `${USER}:${USER} 640\n`);
  });

  it("root on the client is root on the export, as documented", async () => {
    const tool = join(mount.mountpoint, "tool");
    await chown(tool, USER, USER);
    await chmod(tool, 0o750);
    const stats = lstatSync(join(stack.exportDirs.home, "tool"));
    assert.deepEqual([stats.uid, stats.gid, stats.mode & 0o7777], [USER, USER, 0o750]);
  });
});

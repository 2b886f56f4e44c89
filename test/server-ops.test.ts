/**
 * The server straight over NATS, no FUSE: a raw requester speaks the protocol codec to an in-process
 * server backed by real directories, and results are compared with the disk.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import {
  decodeReply,
  encodeRequest,
  errnoName,
  inboxPrefix,
  requestSubject,
  sealFrame,
  type OpArgs,
  type OpName,
  type OpResult,
  type Reply,
  type ServerHandle,
} from "../src/protocol/index.js";
import { openPolicy, parseExportSpecs, startServer, type AccessPolicy, type ExportConfig, type RunningServer } from "../src/server/index.js";
import { startNatsServer, type NatsServer } from "./helpers/nats.js";

const MAX_PAYLOAD = 256 * 1024;

let nats: NatsServer;
let nc: NatsConnection;
let server: RunningServer;
let base: string;
let home: string;
let canary: string;
let sequence = 0;

interface CallOptions {
  identity?: string;
  exportName?: string;
  instance?: string;
  id?: string;
}

/** One connection per identity, with that identity's own inbox prefix: servers answer nowhere else. */
const requesters = new Map<string, Promise<NatsConnection>>();
function requester(identity: string): Promise<NatsConnection> {
  let connection = requesters.get(identity);
  if (connection === undefined) requesters.set(identity, (connection = connect({ servers: nats.url, inboxPrefix: inboxPrefix(identity) })));
  return connection;
}

/** A well-formed request frame with a deadline well in the future. */
function frameFor(id: string, args: unknown, subject: string): Uint8Array {
  return encodeRequest({ id, deadline: Date.now() + 60_000, args } as never, subject);
}

async function call<O extends OpName>(op: O, args: OpArgs<O>, options: CallOptions = {}): Promise<Reply<OpResult<O>>> {
  const identity = options.identity ?? "alice";
  const subject = requestSubject(options.exportName ?? "home", identity, op, options.instance);
  const id = options.id ?? `test:${++sequence}`;
  const message = await (await requester(identity)).request(subject, frameFor(id, args, subject), { timeout: 5000 });
  return decodeReply<OpResult<O>>(message.data, message.subject, id);
}

/** Calls a handle-bound op on the instance that owns the handle. */
function callOn<O extends OpName>(handle: ServerHandle, op: O, args: Omit<OpArgs<O>, "handle">, options: CallOptions = {}) {
  return call(op, { ...args, handle: handle.handle } as OpArgs<O>, { ...options, instance: handle.instance });
}

async function ok<R>(reply: Promise<Reply<R>>): Promise<R> {
  const r = await reply;
  assert.equal(r.errno, 0, `expected success, got ${errnoName(r.errno)}: ${r.message ?? ""}`);
  return r.result as R;
}

async function fails(reply: Promise<Reply<unknown>>, code: string): Promise<void> {
  const r = await reply;
  assert.equal(errnoName(r.errno), code, `expected ${code}, got ${errnoName(r.errno)}: ${r.message ?? ""}`);
}

before(async () => {
  nats = await startNatsServer({ config: `max_payload: ${MAX_PAYLOAD}` });
  nc = await connect({ servers: nats.url });
  base = mkdtempSync(join(tmpdir(), "natsfs-server-ops-"));
  home = join(base, "home");
  canary = join(base, "canary");
  for (const dir of [home, canary, join(base, "pub"), join(base, "squashed")]) mkdirSync(dir);
  // As on a local disk, the anonymous user of a squashed export creates only where it may write.
  chownSync(join(base, "squashed"), 65534, 65534);
  writeFileSync(join(canary, "secret"), "outside the export");
  writeFileSync(join(base, "pub", "readme"), "read only");
  // Hostile links a client could have created: relative and absolute ways out of the export.
  symlinkSync("../canary", join(home, "escape"));
  symlinkSync(canary, join(home, "escape-abs"));
  writeFileSync(join(home, "target"), "target data");
  symlinkSync("target", join(home, "link-to-file"));

  const exports: ExportConfig[] = [
    ...parseExportSpecs([`home=${home}`, `pub=${join(base, "pub")}:ro`]),
    { name: "squashed", path: join(base, "squashed"), readOnly: false, squash: "all", anonUid: 65534, anonGid: 65534 },
  ];
  const open = openPolicy(exports);
  const policy: AccessPolicy = { grant: (identity, name) => (identity === "mallory" ? undefined : identity === "reader" ? "ro" : open.grant(identity, name)) };
  server = await startServer({ nc, exports, policy, logger: pino({ level: "silent" }) });
});

after(async () => {
  for (const connection of requesters.values()) await (await connection).close();
  await server?.stop();
  await nc?.close();
  await nats?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("server ops over NATS", () => {
  it("getattr of the root and a file", async () => {
    const root = await ok(call("getattr", { path: "/" }));
    assert.equal(root.mode & constants.S_IFMT, constants.S_IFDIR);
    const target = await ok(call("getattr", { path: "/target" }));
    assert.equal(target.size, "target data".length);
    const link = await ok(call("getattr", { path: "/link-to-file" }));
    assert.equal(link.mode & constants.S_IFMT, constants.S_IFLNK, "getattr must not follow the leaf");
    await fails(call("getattr", { path: "/missing" }), "ENOENT");
  });

  it("create, write and read round trip byte for byte", async () => {
    const data = randomBytes(200 * 1024 + 17);
    const handle = await ok(call("create", { path: "/data.bin", flags: constants.O_RDWR, mode: 0o640 }));
    assert.equal(handle.instance, server.instance);
    assert.equal(handle.epoch, server.epoch);
    const chunk = 64 * 1024;
    for (let offset = 0; offset < data.length; offset += chunk) {
      const written = await ok(callOn(handle, "write", { offset, data: data.subarray(offset, offset + chunk) }));
      assert.equal(written, Math.min(chunk, data.length - offset));
    }
    await ok(callOn(handle, "fsync", { datasync: false }));
    assert.deepEqual(readFileSync(join(home, "data.bin")), data);
    assert.equal(lstatSync(join(home, "data.bin")).mode & 0o777, 0o640);

    const parts: Uint8Array[] = [];
    for (let offset = 0; ; offset += chunk) {
      const part = await ok(callOn(handle, "read", { offset, length: chunk }));
      if (part.length === 0) break;
      parts.push(part);
    }
    assert.deepEqual(Buffer.concat(parts), data);
    assert.equal((await ok(callOn(handle, "fgetattr", {}))).size, data.length);
    await ok(callOn(handle, "ftruncate", { size: 10 }));
    await ok(callOn(handle, "release", {}));
    assert.equal(lstatSync(join(home, "data.bin")).size, 10);
    await fails(callOn(handle, "read", { offset: 0, length: 1 }), "ESTALE");
  });

  it("writes on an O_APPEND handle go to the offset the client sends, so a repeated write is harmless", async () => {
    writeFileSync(join(home, "log"), "one\n");
    const handle = await ok(call("openw", { path: "/log", flags: constants.O_WRONLY | constants.O_APPEND }));
    await ok(callOn(handle, "write", { offset: 4, data: Buffer.from("two\n") }));
    await ok(callOn(handle, "write", { offset: 4, data: Buffer.from("two\n") }));
    await ok(callOn(handle, "release", {}));
    assert.equal(readFileSync(join(home, "log"), "utf8"), "one\ntwo\n");
  });

  it("readdir lists . and .. and every entry with its attributes", async () => {
    mkdirSync(join(home, "listing"));
    for (const name of ["a", "bb", "ccc"]) writeFileSync(join(home, "listing", name), name);
    const dir = await ok(call("opendir", { path: "/listing" }));
    const page = await ok(callOn(dir, "readdir", { offset: 0 }));
    assert.deepEqual(page.entries.map((e) => e.name).sort(), [".", "..", "a", "bb", "ccc"]);
    for (const entry of page.entries.filter((e) => e.name.length > 0 && !e.name.startsWith("."))) {
      assert.equal(entry.stat?.size, entry.name.length, `attributes of ${entry.name}`);
      assert.equal(entry.stat?.ino, lstatSync(join(home, "listing", entry.name)).ino);
    }
    assert.equal(page.next, undefined);
    const again = await ok(callOn(dir, "readdir", { offset: 0 }));
    assert.equal(again.entries.length, 5, "reading from offset 0 again restarts the listing");
    await ok(callOn(dir, "releasedir", {}));
    await fails(callOn(dir, "readdir", { offset: 0 }), "ESTALE");
  });

  it("readdir of a directory larger than one reply comes in pages", async () => {
    mkdirSync(join(home, "big-listing"));
    const expected = Array.from({ length: 3000 }, (_, i) => `${"n".repeat(180)}-${i}`);
    for (const name of expected) writeFileSync(join(home, "big-listing", name), "");
    const dir = await ok(call("opendir", { path: "/big-listing" }));
    const names: string[] = [];
    let offset: number | undefined = 0;
    let pages = 0;
    while (offset !== undefined) {
      const page = await ok(callOn(dir, "readdir", { offset }));
      assert.ok(page.next === undefined || page.next > offset, "every page moves the offset forward");
      names.push(...page.entries.map((e) => e.name));
      offset = page.next;
      pages += 1;
    }
    await ok(callOn(dir, "releasedir", {}));
    assert.ok(pages > 1, `expected several pages, got ${pages}`);
    assert.deepEqual(names.filter((n) => n !== "." && n !== "..").sort(), expected.sort());
  });

  it("rename replaces the target atomically", async () => {
    writeFileSync(join(home, "r-old"), "new content");
    writeFileSync(join(home, "r-new"), "old content");
    await ok(call("rename", { from: "/r-old", to: "/r-new" }));
    assert.equal(readFileSync(join(home, "r-new"), "utf8"), "new content");
    assert.equal(existsSync(join(home, "r-old")), false);
    await fails(call("rename", { from: "/r-old", to: "/r-x" }), "ENOENT");
    mkdirSync(join(home, "r-dir"));
    await fails(call("rename", { from: "/r-dir", to: "/r-dir/inside" }), "EINVAL");
  });

  it("directory ops report the kernel's errnos", async () => {
    await ok(call("mkdir", { path: "/d", mode: 0o750 }));
    assert.equal(lstatSync(join(home, "d")).mode & 0o777, 0o750);
    await fails(call("mkdir", { path: "/d", mode: 0o755 }), "EEXIST");
    await fails(call("mkdir", { path: "/nope/d", mode: 0o755 }), "ENOENT");
    await fails(call("mkdir", { path: "/target/d", mode: 0o755 }), "ENOTDIR");
    await fails(call("rmdir", { path: "/nothing" }), "ENOENT");
    writeFileSync(join(home, "d", "f"), "x");
    await fails(call("rmdir", { path: "/d" }), "ENOTEMPTY");
    await fails(call("rmdir", { path: "/target" }), "ENOTDIR");
    await fails(call("unlink", { path: "/d" }), "EISDIR");
    await fails(call("opendir", { path: "/target" }), "ENOTDIR");
    await fails(call("openw", { path: "/d", flags: constants.O_WRONLY }), "EISDIR");
    await ok(call("unlink", { path: "/d/f" }));
    await ok(call("rmdir", { path: "/d" }));
    await fails(call("rmdir", { path: "/" }), "EBUSY");
  });

  it("symlink, link, readlink, chmod, utimens, truncate, access", async () => {
    await ok(call("symlink", { target: "/etc/passwd", path: "/abs-link" }));
    assert.equal(await ok(call("readlink", { path: "/abs-link" })), "/etc/passwd");
    await fails(call("getattr", { path: "/abs-link/x" }), "ELOOP");
    await ok(call("link", { from: "/target", to: "/hard" }));
    assert.equal(lstatSync(join(home, "target")).nlink, 2);
    await ok(call("chmod", { path: "/hard", mode: 0o600 }));
    assert.equal(lstatSync(join(home, "target")).mode & 0o777, 0o600);
    await fails(call("chmod", { path: "/link-to-file", mode: 0o777 }), "EOPNOTSUPP");
    await ok(call("utimens", { path: "/hard", atime: { sec: 1_400_086_400, nsec: 122_333_444 }, mtime: "omit" }));
    await ok(call("utimens", { path: "/hard", atime: "omit", mtime: { sec: 1_500_000_000, nsec: 456_789_123 } }));
    const times = lstatSync(join(home, "target"), { bigint: true });
    // To the nanosecond, and an omitted time left as it was.
    assert.equal(times.atimeNs, 1_400_086_400_122_333_444n);
    assert.equal(times.mtimeNs, 1_500_000_000_456_789_123n);
    assert.equal((await ok(call("getattr", { path: "/hard" }))).mtimeNsec, 456_789_123);
    await ok(call("truncate", { path: "/hard", size: 3 }));
    assert.equal(readFileSync(join(home, "target"), "utf8"), "tar");
    await ok(call("access", { path: "/hard", mode: constants.R_OK }));
    await fails(call("truncate", { path: "/link-to-file", size: 0 }), "ELOOP");
  });

  it("mknod makes FIFOs and regular files, refuses devices (no devices: true in the policy)", async () => {
    await ok(call("mknod", { path: "/fifo", mode: constants.S_IFIFO | 0o640, rdev: 0 }));
    const fifo = lstatSync(join(home, "fifo"));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o777, 0o640);
    await fails(call("mknod", { path: "/fifo", mode: constants.S_IFIFO | 0o640, rdev: 0 }), "EEXIST");
    await ok(call("mknod", { path: "/plain", mode: constants.S_IFREG | 0o644, rdev: 0 }));
    assert.ok(lstatSync(join(home, "plain")).isFile());
    await fails(call("mknod", { path: "/dev", mode: constants.S_IFCHR | 0o644, rdev: 0x0103 }), "EPERM");
    // Opening a FIFO on the server would block it, a device would reach the server's hardware: only
    // regular files are opened (or truncated by path).
    await fails(call("open", { path: "/fifo", flags: constants.O_RDONLY }), "EACCES");
    execFileSync("mknod", [join(home, "null-device"), "c", "1", "3"]);
    await fails(call("open", { path: "/null-device", flags: constants.O_RDONLY }), "EACCES");
    await fails(call("openw", { path: "/null-device", flags: constants.O_WRONLY }), "EACCES");
    await fails(call("create", { path: "/null-device", flags: constants.O_WRONLY, mode: 0o644 }), "EACCES");
    await fails(call("truncate", { path: "/null-device", size: 0 }), "EACCES");
  });

  it("user xattrs only", async () => {
    writeFileSync(join(home, "x"), "");
    await ok(call("setxattr", { path: "/x", name: "user.color", value: Buffer.from("blue"), flags: 0 }));
    assert.equal(Buffer.from(await ok(call("getxattr", { path: "/x", name: "user.color" }))).toString(), "blue");
    assert.deepEqual(await ok(call("listxattr", { path: "/x" })), ["user.color"]);
    await fails(call("setxattr", { path: "/x", name: "user.color", value: Buffer.from("red"), flags: 1 }), "EEXIST");
    await fails(call("setxattr", { path: "/x", name: "trusted.evil", value: Buffer.from("1"), flags: 0 }), "EOPNOTSUPP");
    await fails(call("setxattr", { path: "/x", name: "security.capability", value: Buffer.from("1"), flags: 0 }), "EOPNOTSUPP");
    await ok(call("removexattr", { path: "/x", name: "user.color" }));
    await fails(call("getxattr", { path: "/x", name: "user.color" }), "ENODATA");
  });

  it("statfs reports the real file system", async () => {
    const s = await ok(call("statfs", { path: "/" }));
    assert.ok(s.blocks > 0 && s.bsize > 0);
    assert.equal(s.namemax, 255);
  });
});

describe("confinement", () => {
  it("refuses hostile paths", async () => {
    await fails(call("getattr", { path: "/.." }), "EACCES");
    await fails(call("getattr", { path: "/a/../../canary" }), "EACCES");
    await fails(call("getattr", { path: "relative" }), "EINVAL");
    await fails(call("getattr", { path: "" }), "EINVAL");
    await fails(call("getattr", { path: "//canary" }), "EINVAL");
    await fails(call("getattr", { path: "/./target" }), "EINVAL");
    await fails(call("getattr", { path: "/tar\0get" }), "EINVAL");
    await fails(call("getattr", { path: `/${"n".repeat(256)}` }), "ENAMETOOLONG");
    await fails(call("create", { path: `/${"n".repeat(256)}`, flags: constants.O_WRONLY, mode: 0o644 }), "ENAMETOOLONG");
    await fails(call("getattr", { path: "/" + Array.from({ length: 900 }, () => "abcd").join("/") }), "ENAMETOOLONG");
  });

  it("never goes through a symlinked directory", async () => {
    for (const link of ["/escape", "/escape-abs"]) {
      await fails(call("getattr", { path: `${link}/secret` }), "ELOOP");
      await fails(call("open", { path: `${link}/secret`, flags: constants.O_RDONLY }), "ELOOP");
      await fails(call("create", { path: `${link}/planted`, flags: constants.O_WRONLY, mode: 0o644 }), "ELOOP");
      await fails(call("mkdir", { path: `${link}/planted-dir`, mode: 0o755 }), "ELOOP");
      await fails(call("symlink", { target: "x", path: `${link}/planted-link` }), "ELOOP");
      await fails(call("unlink", { path: `${link}/secret` }), "ELOOP");
      await fails(call("rename", { from: "/target", to: `${link}/moved` }), "ELOOP");
      await fails(call("opendir", { path: link }), "ELOOP");
      await fails(call("chmod", { path: `${link}/secret`, mode: 0o777 }), "ELOOP");
      await fails(call("setxattr", { path: `${link}/secret`, name: "user.x", value: Buffer.from("1"), flags: 0 }), "ELOOP");
    }
    assert.deepEqual(readdirSync(canary), ["secret"]);
    assert.equal(readFileSync(join(canary, "secret"), "utf8"), "outside the export");
    assert.equal(lstatSync(join(canary, "secret")).mode & 0o777, 0o644);
  });

  it("does not open a symlink leaf", async () => {
    await fails(call("open", { path: "/link-to-file", flags: constants.O_RDONLY }), "ELOOP");
    await fails(call("openw", { path: "/escape", flags: constants.O_WRONLY }), "ELOOP");
    await fails(call("create", { path: "/escape", flags: constants.O_WRONLY, mode: 0o644 }), "ELOOP");
    await fails(call("create", { path: "/link-to-file", flags: constants.O_WRONLY | constants.O_EXCL, mode: 0o644 }), "EEXIST");
  });
});

describe("requests that must be refused", () => {
  it("open with write flags is not a read-only op", async () => {
    await fails(call("open", { path: "/log", flags: constants.O_WRONLY }), "EACCES");
    await fails(call("open", { path: "/log", flags: constants.O_RDWR }), "EACCES");
    await fails(call("open", { path: "/log", flags: constants.O_RDONLY | constants.O_TRUNC }), "EACCES");
    await fails(call("open", { path: "/new-file", flags: constants.O_RDONLY | constants.O_CREAT }), "EACCES");
    assert.equal(existsSync(join(home, "new-file")), false);
  });

  it("read-only exports and grants give EROFS for every mutating op", async () => {
    const pub = { exportName: "pub" };
    assert.equal(Buffer.from(await ok(callOn(await ok(call("open", { path: "/readme", flags: 0 }, pub)), "read", { offset: 0, length: 100 }, pub))).toString(), "read only");
    await fails(call("mkdir", { path: "/d", mode: 0o755 }, pub), "EROFS");
    await fails(call("create", { path: "/f", flags: constants.O_WRONLY, mode: 0o644 }, pub), "EROFS");
    await fails(call("openw", { path: "/readme", flags: constants.O_WRONLY }, pub), "EROFS");
    await fails(call("unlink", { path: "/readme" }, pub), "EROFS");
    await fails(call("access", { path: "/readme", mode: constants.W_OK }, pub), "EROFS");
    const reader = { identity: "reader" };
    await ok(call("getattr", { path: "/target" }, reader));
    await fails(call("mkdir", { path: "/reader-dir", mode: 0o755 }, reader), "EROFS");
    await fails(call("chmod", { path: "/target", mode: 0o777 }, reader), "EROFS");
    assert.deepEqual(readdirSync(join(base, "pub")), ["readme"]);
  });

  it("an identity without a grant gets EACCES", async () => {
    await fails(call("getattr", { path: "/" }, { identity: "mallory" }), "EACCES");
  });

  it("handles are bound to their instance and identity", async () => {
    const handle = await ok(call("open", { path: "/log", flags: constants.O_RDONLY }));
    await fails(call("read", { handle: handle.handle, offset: 0, length: 1 }), "ESTALE");
    // No instance owns that subject: NATS itself answers "no responders", which the client treats like ESTALE.
    await assert.rejects(call("read", { handle: handle.handle, offset: 0, length: 1 }, { instance: "otherinstance" }), { code: "503" });
    await fails(callOn({ ...handle, handle: 99_999 }, "read", { offset: 0, length: 1 }), "ESTALE");
    await fails(callOn(handle, "read", { offset: 0, length: 1 }, { identity: "bob" }), "ESTALE");
    assert.equal(Buffer.from(await ok(callOn(handle, "read", { offset: 0, length: 3 }))).toString(), "one");
    await ok(callOn(handle, "release", {}));
  });

  it("a retried mkdir is answered from the duplicate-request cache", async () => {
    const id = `retry:${randomBytes(4).toString("hex")}`;
    await ok(call("mkdir", { path: "/once", mode: 0o755 }, { id }));
    await ok(call("mkdir", { path: "/once", mode: 0o755 }, { id }));
    await fails(call("mkdir", { path: "/once", mode: 0o755 }), "EEXIST");
    const [first, second] = await Promise.all([
      call("unlink", { path: "/log" }, { id: "concurrent:1" }),
      call("unlink", { path: "/log" }, { id: "concurrent:1" }),
    ]);
    assert.equal(first.errno, 0);
    assert.equal(second.errno, 0);
  });

  it("replies bigger than max_payload become EMSGSIZE", async () => {
    writeFileSync(join(home, "big"), randomBytes(MAX_PAYLOAD + 1024));
    const handle = await ok(call("open", { path: "/big", flags: constants.O_RDONLY }));
    await fails(callOn(handle, "read", { offset: 0, length: MAX_PAYLOAD }), "EMSGSIZE");
    assert.equal((await ok(callOn(handle, "read", { offset: 0, length: 1024 }))).length, 1024);
    await ok(callOn(handle, "release", {}));
  });

  it("malformed frames get error replies and the server stays up", async () => {
    const subject = requestSubject("home", "alice", "getattr");
    const alice = await requester("alice");
    // Replies to requests the server could not read carry no request id.
    const send = async (target: string, frame: Uint8Array) => {
      const message = await alice.request(target, frame, { timeout: 5000 });
      return decodeReply(message.data, message.subject, "");
    };
    const garbage = await send(subject, randomBytes(64));
    assert.equal(errnoName(garbage.errno), "EBADMSG");
    assert.equal(garbage.damaged, true, "an unsealed frame is reported as damaged, so a client would resend it");
    const sealedGarbage = await send(subject, sealFrame(randomBytes(64), subject));
    assert.equal(errnoName(sealedGarbage.errno), "EINVAL");
    assert.equal(sealedGarbage.damaged, undefined);
    const notAMap = await send(subject, encodeRequest([1, 2, 3] as never, subject));
    assert.equal(errnoName(notAMap.errno), "EINVAL");
    const noDeadline = await send(subject, encodeRequest({ id: "x:2", args: { path: "/" } } as never, subject));
    assert.equal(errnoName(noDeadline.errno), "EINVAL");
    await fails(call("getattr", { path: 42 } as never), "EINVAL");
    await fails(call("read", { handle: "1", offset: 0, length: 1 } as never), "EINVAL");
    await fails(call("write", { handle: 1, offset: 0, data: "text" } as never, { instance: server.instance }), "EINVAL");
    // Not a request subject of the protocol: ignored, like a request without a reply subject.
    await assert.rejects(alice.request("natsfs.home.alice.format", frameFor("x:1", {}, "natsfs.home.alice.format"), { timeout: 500 }), { code: "TIMEOUT" });
    nc.publish(subject, randomBytes(10)); // no reply subject: ignored
    await ok(call("getattr", { path: "/" }));
  });

  it("does not act on a request damaged in transit or delivered on the wrong subject", async () => {
    writeFileSync(join(home, "intact"), "original");
    const handle = await ok(call("openw", { path: "/intact", flags: constants.O_RDWR }));
    const subject = requestSubject("home", "alice", "write", handle.instance);
    const alice = await requester("alice");
    const frame = frameFor(`test:${++sequence}`, { handle: handle.handle, offset: 0, data: Buffer.from("REPLACED") }, subject);
    const damaged = Uint8Array.from(frame);
    damaged[frame.length - 8]! ^= 0x20; // inside the data: still valid msgpack, different bytes
    const answer = await alice.request(subject, damaged, { timeout: 5000 });
    const reply = decodeReply(answer.data, answer.subject, "");
    assert.equal(reply.damaged, true);
    assert.equal(errnoName(reply.errno), "EBADMSG");
    const sealedForAnother = frameFor(`test:${++sequence}`, { handle: handle.handle, offset: 0, data: Buffer.from("REPLACED") }, `${subject}.other`);
    const misdelivered = await alice.request(subject, sealedForAnother, { timeout: 5000 });
    assert.equal(decodeReply(misdelivered.data, misdelivered.subject, "").damaged, true);
    assert.equal(readFileSync(join(home, "intact"), "utf8"), "original", "a damaged write reached the disk");
    await ok(callOn(handle, "write", { offset: 0, data: Buffer.from("REPLACED") }));
    assert.equal(readFileSync(join(home, "intact"), "utf8"), "REPLACED");
    await ok(callOn(handle, "release", {}));
  });
});

describe("squash all", () => {
  it("gives new entries to the anon ids and refuses chown", async () => {
    const squashed = { exportName: "squashed" };
    const handle = await ok(call("create", { path: "/f", flags: constants.O_WRONLY, mode: 0o644 }, squashed));
    await ok(callOn(handle, "release", {}, squashed));
    await ok(call("mkdir", { path: "/d", mode: 0o755 }, squashed));
    await ok(call("symlink", { target: "f", path: "/l" }, squashed));
    for (const name of ["f", "d", "l"]) {
      const s = lstatSync(join(base, "squashed", name));
      assert.deepEqual([s.uid, s.gid], [65534, 65534], name);
    }
    await fails(call("chown", { path: "/f", uid: 0, gid: 0 }, squashed), "EPERM");
  });
});

/**
 * Unit tests of src/protocol: the op table against the wire types, subjects, the msgpack codec, errno
 * mapping, open flags and request ids. No bus, no mount.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { describe, it } from "node:test";
import { encode } from "@msgpack/msgpack";
import {
  CLIENT_OPEN_FLAGS,
  DamagedFrameError,
  DecodeError,
  MisdirectedReplyError,
  ERRNO,
  FsError,
  OPS,
  OP_NAMES,
  RequestIds,
  SUBJECT_ROOT,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  errnoName,
  errnoOf,
  fsError,
  isOpName,
  opensForWrite,
  parseRequestSubject,
  permissionSubjects,
  randomId,
  reopenFlags,
  requestSubject,
  sealFrame,
  serverSubscriptions,
} from "../src/protocol/index.js";

const MESSAGES_TS = new URL("../src/protocol/messages.ts", import.meta.url);

/** Op name → argument field names, read from the `OpTypes` interface in messages.ts. */
async function opTypesArgs(): Promise<Map<string, string[]>> {
  const source = await readFile(MESSAGES_TS, "utf8");
  const body = /export interface OpTypes \{([\s\S]*?)\n\}/.exec(source)?.[1];
  assert.ok(body, "OpTypes interface not found in messages.ts");
  const ops = new Map<string, string[]>();
  for (const match of body.matchAll(/^\s*(\w+): \{ args: \{([^}]*)\}/gm)) {
    const fields = [...match[2]!.matchAll(/(\w+):/g)].map((m) => m[1]!);
    ops.set(match[1]!, fields);
  }
  return ops;
}

describe("op table", () => {
  it("lists exactly the ops of OpTypes in messages.ts", async () => {
    const typed = await opTypesArgs();
    assert.ok(typed.size > 20, `parsed only ${typed.size} ops from messages.ts`);
    assert.deepEqual([...OP_NAMES].sort(), [...typed.keys()].sort());
  });

  it("gives every handle-bound op a handle argument and no path, and no other op a handle", async () => {
    const typed = await opTypesArgs();
    for (const name of OP_NAMES) {
      const fields = typed.get(name)!;
      if (OPS[name].handleBound) {
        assert.ok(fields.includes("handle"), `${name} is handle-bound but takes no handle`);
        assert.ok(!fields.includes("path"), `${name} is handle-bound but takes a path`);
      } else {
        assert.ok(!fields.includes("handle"), `${name} takes a handle but is not handle-bound`);
      }
    }
  });

  it("marks every non-mutating op idempotent", () => {
    for (const name of OP_NAMES) {
      if (!OPS[name].mutating) assert.ok(OPS[name].idempotent, name);
    }
  });

  it("recognises only own op names", () => {
    for (const name of OP_NAMES) assert.ok(isOpName(name));
    for (const name of ["", "GETATTR", "toString", "__proto__", "constructor", "hasOwnProperty", "get attr"]) {
      assert.equal(isOpName(name), false, name);
    }
  });
});

describe("subjects", () => {
  it("round-trips shared and instance subjects of every op", () => {
    for (const op of OP_NAMES) {
      const shared = requestSubject("data_1", "alice-2", op);
      assert.deepEqual(parseRequestSubject(shared), { exportName: "data_1", identity: "alice-2", op });
      const owned = requestSubject("data_1", "alice-2", op, "abc123");
      assert.deepEqual(parseRequestSubject(owned), { exportName: "data_1", identity: "alice-2", op, instance: "abc123" });
    }
  });

  it("rejects subjects that are not requests", () => {
    const longToken = "x".repeat(65);
    for (const subject of [
      "",
      "natsfs",
      "natsfs.data",
      "natsfs.data.alice",
      "other.data.alice.getattr",
      "NATSFS.data.alice.getattr",
      "natsfs.data.alice.nosuchop",
      "natsfs.data.alice.toString",
      "natsfs.data.alice.__proto__",
      "natsfs.data.alice.getattr.inst.extra",
      "natsfs.data.alice.getattr.",
      "natsfs..alice.getattr",
      "natsfs.data..getattr",
      "natsfs.*.alice.getattr",
      "natsfs.data.>.getattr",
      "natsfs.data.alice.getattr.*",
      "natsfs.da ta.alice.getattr",
      "natsfs.dätä.alice.getattr",
      `natsfs.${longToken}.alice.getattr`,
      `natsfs.data.${longToken}.getattr`,
      `natsfs.data.alice.getattr.${longToken}`,
    ]) {
      assert.equal(parseRequestSubject(subject), undefined, subject);
    }
  });

  it("accepts 64-character tokens", () => {
    const token = "a".repeat(64);
    assert.deepEqual(parseRequestSubject(requestSubject(token, token, "read", token)), {
      exportName: token,
      identity: token,
      op: "read",
      instance: token,
    });
  });

  it("gives servers subscriptions that cover the request subjects", () => {
    const { shared, own } = serverSubscriptions("data", "inst1");
    assert.equal(shared, `${SUBJECT_ROOT}.data.*.*`);
    assert.equal(own, `${SUBJECT_ROOT}.data.*.*.inst1`);
    assert.deepEqual(permissionSubjects("data", "alice", ["read", "write"]), [
      "natsfs.data.alice.read",
      "natsfs.data.alice.read.*",
      "natsfs.data.alice.write",
      "natsfs.data.alice.write.*",
    ]);
  });
});

describe("codec", () => {
  const SUBJECT = "natsfs.data.alice.write.i1";
  const INBOX = "_INBOX.abc.7";
  /** A body sealed as a client would seal it: what reaches the decoder behind the seal. */
  const sealed = (value: unknown, subject = SUBJECT) => sealFrame(encode(value), subject);

  it("round-trips a request with binary data kept as raw bytes, not base64", () => {
    const data = randomBytes(256 * 1024);
    const frame = encodeRequest({ id: "client:7", deadline: 1e13, args: { handle: 3, offset: 4096, data } }, SUBJECT);
    assert.ok(frame.length >= data.length && frame.length < data.length + 128, `frame of ${frame.length} bytes`);
    const decoded = decodeRequest(frame, SUBJECT);
    assert.equal(decoded.id, "client:7");
    assert.equal(decoded.args.handle, 3);
    assert.equal(decoded.args.offset, 4096);
    assert.ok(decoded.args.data instanceof Uint8Array);
    assert.ok(Buffer.from(decoded.args.data).equals(data));
  });

  it("round-trips replies sealed for the inbox, dropping undefined fields", () => {
    const value = Uint8Array.of(0, 1, 2, 255);
    const frame = sealFrame(encodeReply({ id: "c:1", errno: 0, instance: "i1", epoch: "e1", result: value, message: undefined }), INBOX);
    const reply = decodeReply<Uint8Array>(frame, INBOX, "c:1");
    assert.deepEqual(reply, { id: "c:1", errno: 0, instance: "i1", epoch: "e1", result: value });
    assert.ok(!("message" in reply));
    const failed = decodeReply(sealFrame(encodeReply({ id: "c:1", errno: ERRNO.ENOENT!, instance: "i1", epoch: "e1", message: "no such file" }), INBOX), INBOX, "c:1");
    assert.equal(failed.errno, ERRNO.ENOENT);
    assert.equal(failed.message, "no such file");
  });

  it("catches every single-bit error and burst in a sealed frame as damage", () => {
    const frame = encodeRequest({ id: "client:7", deadline: 1e13, args: { handle: 3, offset: 0, data: randomBytes(4096) } }, SUBJECT);
    for (let bit = 0; bit < frame.length * 8; bit += 7) {
      const flipped = Uint8Array.from(frame);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assert.throws(() => decodeRequest(flipped, SUBJECT), DamagedFrameError, `bit ${bit}`);
    }
    // Bytes of another message spliced into the data, length unchanged: still valid msgpack.
    const spliced = Uint8Array.from(frame);
    spliced.set(randomBytes(1000), 100);
    assert.throws(() => decodeRequest(spliced, SUBJECT), DamagedFrameError);
    for (const short of [new Uint8Array(0), Uint8Array.of(1, 2, 3)]) assert.throws(() => decodeRequest(short, SUBJECT), DamagedFrameError);
  });

  it("refuses a reply that answers another request, even sealed for our inbox", () => {
    const forged = sealFrame(encodeReply({ id: "bob:9", errno: 0, instance: "i1", epoch: "e1", result: null }), INBOX);
    assert.throws(() => decodeReply(forged, INBOX, "alice:1"), MisdirectedReplyError);
    const unlabelled = sealFrame(encodeReply({ errno: 0, instance: "i1", epoch: "e1", result: null } as never), INBOX);
    assert.throws(() => decodeReply(unlabelled, INBOX, "alice:1"), MisdirectedReplyError);
    // A "damaged" answer only asks for a re-send: accepted whatever its id.
    const damaged = sealFrame(encodeReply({ id: "", errno: ERRNO.EBADMSG!, instance: "i1", epoch: "e1", damaged: true }), INBOX);
    assert.equal(decodeReply(damaged, INBOX, "alice:1").damaged, true);
  });

  it("refuses a request without a deadline", () => {
    const frame = encodeRequest({ id: "c:1", args: { path: "/a" } } as never, SUBJECT);
    assert.throws(() => decodeRequest(frame, SUBJECT), /deadline/);
    assert.equal(decodeRequest(encodeRequest({ id: "c:1", deadline: 5, args: { path: "/a" } }, SUBJECT), SUBJECT).deadline, 5);
  });

  it("catches a frame delivered on a subject other than the one it was sealed for", () => {
    const request = encodeRequest({ id: "c:1", deadline: 1e13, args: { path: "/a" } }, SUBJECT);
    assert.throws(() => decodeRequest(request, "natsfs.data.alice.unlink"), DamagedFrameError);
    const reply = sealFrame(encodeReply({ id: "c:1", errno: 0, instance: "i1", epoch: "e1", result: null }), INBOX);
    assert.throws(() => decodeReply(reply, "_INBOX.abc.8", "c:1"), DamagedFrameError);
    assert.equal(decodeReply(reply, INBOX, "c:1").errno, 0);
  });

  it("throws DecodeError for random bytes, sealed or not", () => {
    for (let i = 0; i < 200; i++) {
      const body = randomBytes(1 + (i % 64));
      assert.throws(() => decodeRequest(body, SUBJECT), DamagedFrameError);
      try {
        const request = decodeRequest(sealFrame(body, SUBJECT), SUBJECT);
        // Random bytes may by chance be a valid envelope; then it must really be one.
        assert.equal(typeof request.id, "string");
        assert.equal(typeof request.args, "object");
      } catch (err) {
        assert.ok(err instanceof DecodeError && !(err instanceof DamagedFrameError), `not a plain DecodeError: ${String(err)}`);
      }
      assert.throws(() => decodeReply(sealFrame(body, INBOX), INBOX, "c:1"), DecodeError);
    }
  });

  it("throws DecodeError for values that are not maps", () => {
    for (const value of [null, 42, "text", [1, 2, 3], true]) {
      assert.throws(() => decodeRequest(sealed(value), SUBJECT), DecodeError, JSON.stringify(value));
      assert.throws(() => decodeReply(sealed(value, INBOX), INBOX, "c:1"), DecodeError, JSON.stringify(value));
    }
    assert.throws(() => decodeRequest(sealFrame(new Uint8Array(0), SUBJECT), SUBJECT), DecodeError);
  });

  it("throws DecodeError for a missing or bad id or args", () => {
    for (const value of [
      { args: { path: "/" } },
      { id: "", args: { path: "/" } },
      { id: 12, args: { path: "/" } },
      { id: "x".repeat(129), args: { path: "/" } },
      { id: "c:1" },
      { id: "c:1", args: null },
      { id: "c:1", args: [1] },
      { id: "c:1", args: "path" },
    ]) {
      assert.throws(() => decodeRequest(sealed(value), SUBJECT), DecodeError, JSON.stringify(value));
    }
  });

  it("throws DecodeError for replies without errno, instance or epoch", () => {
    for (const value of [
      { instance: "i", epoch: "e" },
      { errno: "0", instance: "i", epoch: "e" },
      { errno: 0, epoch: "e" },
      { errno: 0, instance: "i" },
    ]) {
      assert.throws(() => decodeReply(sealed(value, INBOX), INBOX, "c:1"), DecodeError, JSON.stringify(value));
    }
  });

  it("refuses huge declared lengths without allocating them", () => {
    const huge = [
      Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff), // bin 32
      Uint8Array.of(0xdb, 0x7f, 0xff, 0xff, 0xff), // str 32
      Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), // array 32
      Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff), // map 32
      Uint8Array.of(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), // ext 32
      Uint8Array.of(0xc6, 0x00, 0x00, 0x10, 0x00), // bin 32 of 4 KiB, truncated
    ];
    for (const body of huge) {
      assert.throws(() => decodeRequest(sealFrame(body, SUBJECT), SUBJECT), DecodeError, Buffer.from(body).toString("hex"));
      // A huge field inside a valid-looking envelope is refused too.
      const nested = Buffer.concat([
        Uint8Array.of(0x82), // map of 2: id, args
        encode("id"),
        encode("c:1"),
        encode("args"),
        Uint8Array.of(0x81), // map of 1: data
        encode("data"),
        body,
      ]);
      assert.throws(() => decodeRequest(sealFrame(nested, SUBJECT), SUBJECT), DecodeError);
    }
  });

  it("refuses trailing bytes and keeps decoding after a failure", () => {
    const body = encode({ id: "c:1", deadline: 7, args: { path: "/a" } });
    assert.throws(() => decodeRequest(sealFrame(Buffer.concat([body, Uint8Array.of(0x00)]), SUBJECT), SUBJECT), DecodeError);
    assert.throws(() => decodeRequest(sealFrame(body.subarray(0, body.length - 2), SUBJECT), SUBJECT), DecodeError);
    assert.deepEqual(decodeRequest(sealFrame(body, SUBJECT), SUBJECT), { id: "c:1", deadline: 7, args: { path: "/a" } });
  });
});

describe("errno", () => {
  it("maps Node fs errors by their code", async () => {
    const missing = await stat("/nonexistent/natsfs-unit").catch((err: unknown) => err);
    assert.equal(errnoOf(missing), ERRNO.ENOENT);
    const notDir = await readFile("/etc/hostname/child").catch((err: unknown) => err);
    assert.equal(errnoOf(notDir), ERRNO.ENOTDIR);
    const isDir = await readFile("/").catch((err: unknown) => err);
    assert.equal(errnoOf(isDir), ERRNO.EISDIR);
  });

  it("maps libuv's negative errno when there is no usable code", () => {
    assert.equal(errnoOf({ errno: -ERRNO.EACCES! }), ERRNO.EACCES);
    assert.equal(errnoOf({ code: "ERR_SOMETHING", errno: -ERRNO.EPERM! }), ERRNO.EPERM);
  });

  it("keeps the errno of an FsError", () => {
    const err = fsError("ENOSPC", "writing /x");
    assert.ok(err instanceof FsError);
    assert.equal(errnoOf(err), ERRNO.ENOSPC);
    assert.equal(err.code, "ENOSPC");
    assert.match(err.message, /ENOSPC: writing \/x/);
    assert.equal(errnoOf(new FsError(ERRNO.EXDEV!, "link")), ERRNO.EXDEV);
    assert.throws(() => fsError("ENOTANERRNO", "x"));
  });

  it("maps anything else to EIO", () => {
    for (const junk of [undefined, null, 0, 5, "ENOENT", new Error("boom"), { code: 2 }, { code: "503" }, { errno: 0 }, { errno: -99999 }]) {
      assert.equal(errnoOf(junk), ERRNO.EIO, String(JSON.stringify(junk)));
    }
  });

  it("names errnos, including unknown ones", () => {
    assert.equal(errnoName(ERRNO.ENOENT!), "ENOENT");
    assert.equal(errnoName(99999), "E99999");
  });
});

describe("open flags", () => {
  const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND } = constants;

  it("tells which opens need write access", () => {
    assert.equal(opensForWrite(O_RDONLY), false);
    assert.equal(opensForWrite(O_RDONLY | constants.O_NOFOLLOW), false);
    assert.equal(opensForWrite(O_WRONLY), true);
    assert.equal(opensForWrite(O_RDWR), true);
    assert.equal(opensForWrite(O_WRONLY | O_APPEND), true);
    assert.equal(opensForWrite(O_RDONLY | O_TRUNC), true);
  });

  it("strips O_CREAT, O_EXCL and O_TRUNC for a re-open and keeps the rest", () => {
    const flags = O_RDWR | O_CREAT | O_EXCL | O_TRUNC | O_APPEND;
    assert.equal(reopenFlags(flags), O_RDWR | O_APPEND);
    assert.equal(reopenFlags(O_WRONLY | O_TRUNC), O_WRONLY);
    assert.equal(reopenFlags(O_RDONLY), O_RDONLY);
    assert.equal(reopenFlags(reopenFlags(flags)), reopenFlags(flags));
    assert.equal(CLIENT_OPEN_FLAGS & O_CREAT, O_CREAT);
  });
});

describe("ids", () => {
  it("numbers requests per client, in order and without repeats", () => {
    const ids = new RequestIds("client7");
    assert.equal(ids.next(), "client7:1");
    assert.equal(ids.next(), "client7:2");
    const many = new Set(Array.from({ length: 1000 }, () => ids.next()));
    assert.equal(many.size, 1000);
  });

  it("makes random ids that are subject tokens and differ", () => {
    const a = new RequestIds();
    const b = new RequestIds();
    assert.notEqual(a.clientId, b.clientId);
    assert.match(a.clientId, /^[0-9a-f]{12}$/);
    assert.match(randomId(4), /^[0-9a-f]{8}$/);
  });
});

/**
 * The VFS over a fake RPC: an in-memory export, every call counted. Coherence (notices, revalidation,
 * appends seen by an open reader), READDIRPLUS into the cache, and failover of calls in flight.
 */
import assert from "node:assert/strict";
import { constants } from "node:fs";
import { describe, it } from "node:test";
import { ERRNO, fsError, type OpArgs, type OpName, type OpResult, type Stat } from "../src/protocol/index.js";
import { NULL_CLIENT_OBSERVER } from "../src/client/observer.js";
import { DEFAULT_CLIENT_OPTIONS } from "../src/client/options.js";
import { InstanceGoneError, type CallOptions } from "../src/client/rpc.js";
import { Vfs } from "../src/client/vfs.js";

interface Node {
  ino: number;
  mode: number;
  data: Buffer;
  mtimeMs: number;
}

/** One export held in memory: names → nodes, handles → names, on instances that can be killed. */
class FakeExport {
  readonly exportName = "data";
  readonly maxDataBytes = 64;
  readonly nodes = new Map<string, Node>([["/", { ino: 1, mode: constants.S_IFDIR | 0o755, data: Buffer.alloc(0), mtimeMs: 0 }]]);
  readonly calls: string[] = [];
  private readonly handles = new Map<number, string>();
  private nextIno = 2;
  private nextHandle = 1;
  instance = "i1";
  /** Calls to a dead instance wait, as to a frozen server, until `failOnce` answers one with no responders. */
  dead = new Set<string>();
  private stuck: Array<() => void> = [];

  put(path: string, content: string | Buffer): Node {
    const existing = this.nodes.get(path);
    const node = existing ?? { ino: this.nextIno++, mode: constants.S_IFREG | 0o644, data: Buffer.alloc(0), mtimeMs: 0 };
    node.data = Buffer.from(content);
    node.mtimeMs += 1;
    this.nodes.set(path, node);
    return node;
  }

  stat(node: Node): Stat {
    return { mode: node.mode, uid: 0, gid: 0, size: node.data.length, nlink: 1, ino: node.ino, dev: 1, rdev: 0, blksize: 4096, blocks: 1, atimeMs: 0, mtimeMs: node.mtimeMs, ctimeMs: node.mtimeMs };
  }

  count(op: string): number {
    return this.calls.filter((c) => c === op).length;
  }

  /** Answers one call stuck on a dead instance with "no responders". */
  failOne(): void {
    this.stuck.shift()?.();
  }

  async call<O extends OpName>(op: O, args: OpArgs<O>, options: CallOptions = {}): Promise<OpResult<O>> {
    this.calls.push(op);
    await Promise.resolve();
    if (options.instance !== undefined && this.dead.has(options.instance)) {
      const instance = options.instance;
      await new Promise<void>((resolve) => this.stuck.push(resolve));
      throw new InstanceGoneError(instance, "no_responders");
    }
    return this.execute(op, args as Record<string, never>) as OpResult<O>;
  }

  async fenced(): Promise<void> {}

  private node(path: string): Node {
    const node = this.nodes.get(path);
    if (!node) throw fsError("ENOENT", path);
    return node;
  }

  private open(path: string) {
    const node = this.node(path);
    const handle = this.nextHandle++;
    this.handles.set(handle, path);
    return { instance: this.instance, epoch: "e", handle, stat: this.stat(node) };
  }

  private execute(op: OpName, a: Record<string, never>): unknown {
    switch (op) {
      case "getattr":
        return this.stat(this.node(a.path));
      case "open":
      case "openw":
        return this.open(a.path);
      case "read": {
        const data = this.node(this.handles.get(a.handle)!).data;
        return data.subarray(a.offset, (a.offset as number) + (a.length as number));
      }
      case "write": {
        const node = this.node(this.handles.get(a.handle)!);
        const data = a.data as Uint8Array;
        const end = Math.max(node.data.length, (a.offset as number) + data.length);
        const grown = Buffer.alloc(end);
        node.data.copy(grown);
        grown.set(data, a.offset);
        node.data = grown;
        node.mtimeMs += 1;
        return data.length;
      }
      case "opendir":
        return { instance: this.instance, epoch: "e", handle: this.nextHandle++ };
      case "readdir":
        return {
          entries: [...this.nodes.entries()].filter(([path]) => path !== "/").map(([path, node]) => ({ name: path.slice(1), stat: this.stat(node) })),
        };
      case "rename": {
        const node = this.node(a.from);
        this.nodes.delete(a.from);
        this.nodes.set(a.to, node);
        return null;
      }
      default:
        return null;
    }
  }
}

function mount(options: Partial<typeof DEFAULT_CLIENT_OPTIONS> = {}) {
  const server = new FakeExport();
  const vfs = new Vfs([server], false, NULL_CLIENT_OBSERVER, { ...DEFAULT_CLIENT_OPTIONS, ...options });
  const state = vfs.exports.get("data")!;
  return { server, vfs, state };
}

describe("Vfs over a fake RPC", () => {
  it("answers getattr from its cache until a notice or its own change drops the name", async () => {
    const { server, vfs, state } = mount();
    server.put("/f", "abc");
    assert.equal((await vfs.getattr("/f")).size, 3);
    assert.equal((await vfs.getattr("/f")).size, 3);
    assert.equal(server.count("getattr"), 1);
    server.put("/f", "abcdef");
    state.apply({ path: "/f" });
    assert.equal((await vfs.getattr("/f")).size, 6);
    await assert.rejects(vfs.getattr("/nope"), { errno: ERRNO.ENOENT });
    await assert.rejects(vfs.getattr("/nope"), { errno: ERRNO.ENOENT });
    assert.equal(server.count("getattr"), 3, "the second miss is answered by the negative entry");
    await vfs.rename("/f", "/nope");
    assert.equal((await vfs.getattr("/nope")).size, 6, "a rename drops the negative entry of its target");
    vfs.shutdown();
  });

  it("fills the cache from readdir, so ls -l costs no getattr", async () => {
    const { server, vfs } = mount();
    for (let i = 0; i < 20; i++) server.put(`/f${i}`, "x".repeat(i));
    const names = await vfs.readdir("/");
    assert.equal(names.length, 20);
    for (let i = 0; i < 20; i++) assert.equal((await vfs.getattr(`/f${i}`)).size, i);
    assert.equal(server.count("getattr"), 0);
    vfs.shutdown();
  });

  it("an open reader sees data appended by another client once the size it gets grows", async () => {
    const { server, vfs, state } = mount();
    const node = server.put("/log", "a".repeat(100));
    const fh = await vfs.open("/log", constants.O_RDONLY);
    assert.equal((await vfs.read(fh, 4096, 0)).length, 100);
    for (let i = 1; i <= 3; i++) {
      server.put("/log", "a".repeat(100 + i * 50));
      state.apply({ ino: node.ino });
      assert.equal((await vfs.getattr("/log")).size, 100 + i * 50);
      const more = await vfs.read(fh, 4096, 100 + (i - 1) * 50);
      assert.equal(more.length, 50, `append ${i}`);
    }
    assert.equal((await vfs.read(fh, 4096, 0)).length, 250);
    await vfs.release(fh);
    vfs.shutdown();
  });

  it("close-to-open: an open revalidates the file's cached data", async () => {
    const { server, vfs } = mount();
    server.put("/f", Buffer.alloc(640, 1));
    let fh = await vfs.open("/f", constants.O_RDONLY);
    for (let at = 0; at < 640; at += 64) await vfs.read(fh, 64, at);
    await vfs.release(fh);
    server.put("/f", Buffer.alloc(640, 2)); // changed elsewhere, no notice
    fh = await vfs.open("/f", constants.O_RDONLY);
    const data = await vfs.read(fh, 64, 0);
    assert.ok(data.every((b) => b === 2));
    await vfs.release(fh);
    vfs.shutdown();
  });

  it("writes are read back through another handle of the same file before they are flushed", async () => {
    const { server, vfs } = mount();
    server.put("/w", "");
    const writer = await vfs.open("/w", constants.O_WRONLY);
    const reader = await vfs.open("/w", constants.O_RDONLY);
    await vfs.write(writer, Buffer.from("hello"), 0);
    assert.equal(Buffer.from(await vfs.read(reader, 100, 0)).toString(), "hello");
    assert.equal((await vfs.getattr("/w")).size, 5);
    await vfs.release(writer);
    await vfs.release(reader);
    vfs.shutdown();
  });

  it("moves every call in flight to a gone instance at once when one of them learns it is gone", async () => {
    const { server, vfs } = mount({ readAheadMaxBlocks: 1 });
    server.put("/a", Buffer.alloc(64, 1));
    server.put("/b", Buffer.alloc(64, 2));
    const fa = await vfs.open("/a", constants.O_RDONLY);
    const fb = await vfs.open("/b", constants.O_RDONLY);
    server.dead.add("i1");
    server.instance = "i2";
    const reads = [vfs.read(fa, 64, 0), vfs.read(fb, 64, 0)];
    await new Promise((resolve) => setImmediate(resolve));
    server.failOne(); // only the first call hears "no responders"
    const [a, b] = await Promise.all(reads);
    assert.ok(a.every((x) => x === 1));
    assert.ok(b.every((x) => x === 2));
    assert.equal(server.count("open"), 4, "both handles re-opened on the new instance");
    vfs.shutdown();
  });
});

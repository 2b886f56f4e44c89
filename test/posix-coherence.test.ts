/**
 * Two mounts (A and B) of one export over mutual TLS: what one does, the other sees at once (change
 * notices), and changes made directly in the exported directory show within the 1 s revalidation
 * bound. A third mount with a small memory budget reads backward and holds many files open, and its
 * budget metrics must stay within the budget.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../src/cli/ports.js";
import { writeRandomFile, waitUntil } from "./helpers/faults.js";
import { startMountProcess, startStack, stopProcess, unmount, type Stack } from "./helpers/mount.js";
import type { Started } from "./helpers/processes.js";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("two mounts of one export stay coherent", { timeout: 240_000 }, () => {
  let stack: Stack;
  let a: string;
  let b: string;
  let small: string;
  let smallPort: number;
  const extraMounts: Array<{ proc: Started; mountpoint: string }> = [];

  before(async () => {
    stack = await startStack({ insecure: false });
    a = stack.mountpoint;
    b = join(stack.root, "mnt-b");
    small = join(stack.root, "mnt-small");
    mkdirSync(b, { mode: 0o755 });
    mkdirSync(small, { mode: 0o755 });
    extraMounts.push({ proc: await startMountProcess(stack.bus, "data", b), mountpoint: b });
    smallPort = await freePort();
    const smallArgs = ["--cache-size", "16", "--metrics-port", String(smallPort)];
    extraMounts.push({ proc: await startMountProcess(stack.bus, "data", small, smallArgs), mountpoint: small });
  });

  after(async () => {
    for (const { proc, mountpoint } of extraMounts) {
      await stopProcess(proc);
      await unmount(mountpoint);
    }
    await stack?.teardown();
  });

  it("an open reader on B sees every append made through A (pread and read)", async () => {
    await fs.writeFile(join(a, "grow.bin"), Buffer.alloc(1000, 0x30));
    const reader = await fs.open(join(b, "grow.bin"), "r");
    try {
      const first = await reader.read(Buffer.alloc(4096), 0, 4096, null);
      assert.equal(first.bytesRead, 1000);
      for (let i = 1; i <= 10; i++) {
        await fs.appendFile(join(a, "grow.bin"), Buffer.alloc(1000, 0x30 + i));
        assert.equal((await fs.stat(join(b, "grow.bin"))).size, 1000 * (i + 1));
        const more = await reader.read(Buffer.alloc(4096), 0, 4096, null);
        assert.equal(more.bytesRead, 1000, `append ${i}: read on the open descriptor`);
        assert.ok(more.buffer.subarray(0, 1000).every((byte) => byte === 0x30 + i), `append ${i}: bytes`);
      }
      const whole = await reader.read(Buffer.alloc(MiB), 0, MiB, 0);
      assert.equal(whole.bytesRead, 11_000, "pread of the whole file from the start");
    } finally {
      await reader.close();
    }
  });

  it("tail -f on B prints every line appended through A", async () => {
    await fs.writeFile(join(a, "log.txt"), "line 0\n");
    const tail = spawn("tail", ["-n", "+1", "-f", "--sleep-interval=0.2", join(b, "log.txt")], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    tail.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitUntil("tail prints the first line", () => output.includes("line 0\n"), 10_000);
      for (let i = 1; i <= 10; i++) {
        await fs.appendFile(join(a, "log.txt"), `line ${i}\n`);
        await sleep(100);
      }
      await waitUntil("tail prints all 11 lines", () => output.split("\n").filter(Boolean).length === 11, 10_000);
      assert.deepEqual(output.split("\n").filter(Boolean), Array.from({ length: 11 }, (_, i) => `line ${i}`));
    } finally {
      tail.kill("SIGTERM");
    }
  });

  it("rename, chmod and unlink through A are seen at once through B", async () => {
    await fs.writeFile(join(a, "moving"), "x");
    assert.equal((await fs.stat(join(b, "moving"))).size, 1);
    await assert.rejects(fs.stat(join(b, "moved")), { code: "ENOENT" });

    await fs.rename(join(a, "moving"), join(a, "moved"));
    await assert.rejects(fs.stat(join(b, "moving")), { code: "ENOENT" }, "old name gone at once");
    assert.equal((await fs.stat(join(b, "moved"))).size, 1, "new name there at once (negative entry dropped)");

    await fs.chmod(join(a, "moved"), 0o600);
    assert.equal((await fs.stat(join(b, "moved"))).mode & 0o777, 0o600, "mode changed at once");

    await fs.unlink(join(a, "moved"));
    await assert.rejects(fs.stat(join(b, "moved")), { code: "ENOENT" }, "unlinked at once");
    assert.ok(!(await fs.readdir(b)).includes("moved"));
  });

  it("a change made directly in the export directory shows within the 1 s bound", async () => {
    await fs.writeFile(join(a, "direct"), "12345");
    assert.equal((await fs.stat(join(b, "direct"))).size, 5);
    await assert.rejects(fs.stat(join(b, "direct-new")), { code: "ENOENT" });
    const changedAt = Date.now();
    appendFileSync(join(stack.exportDir, "direct"), "678");
    writeFileSync(join(stack.exportDir, "direct-new"), "n");
    await waitUntil("B sees the new size", async () => (await fs.stat(join(b, "direct"))).size === 8, 3_000);
    await waitUntil("B sees the new file", () => fs.stat(join(b, "direct-new")).then(() => true, () => false), 3_000);
    const seenAfter = Date.now() - changedAt;
    assert.ok(seenAfter <= 1_500, `seen after ${seenAfter} ms`);
    assert.equal(await fs.readFile(join(b, "direct"), "utf8"), "12345678");
  });

  it("a backward read and many open files stay inside a 16 MiB budget", async () => {
    const size = 64 * MiB;
    writeRandomFile(join(stack.exportDir, "big.bin"), size);
    const expected = await fs.readFile(join(stack.exportDir, "big.bin"));
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await budgetUsed(smallPort));
        await sleep(50);
      }
    })();
    try {
      const handle = await fs.open(join(small, "big.bin"), "r");
      try {
        const chunk = 128 * KiB;
        for (let offset = size - chunk; offset >= 0; offset -= chunk) {
          const { buffer, bytesRead } = await handle.read(Buffer.alloc(chunk), 0, chunk, offset);
          assert.equal(bytesRead, chunk);
          assert.ok(buffer.equals(expected.subarray(offset, offset + chunk)), `bytes at ${offset}`);
        }
      } finally {
        await handle.close();
      }
      const files = await Promise.all(
        Array.from({ length: 64 }, async (_, i) => {
          await fs.writeFile(join(small, `many-${i}`), Buffer.alloc(512 * KiB, i));
          return fs.open(join(small, `many-${i}`), "r");
        }),
      );
      try {
        await Promise.all(files.map((file) => file.read(Buffer.alloc(256 * KiB), 0, 256 * KiB, 0)));
      } finally {
        await Promise.all(files.map((file) => file.close()));
      }
    } finally {
      sampling = false;
      await sampler;
    }
    assert.ok(peak > 0, "the budget metrics are exported");
    assert.ok(peak <= 16 * MiB, `budget held ${peak} bytes at its peak`);
  });
});

/** Bytes the mount's memory budget holds, from its metrics endpoint. */
async function budgetUsed(port: number): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  let total = 0;
  for (const match of text.matchAll(/^natsfs_client_cache_bytes\{kind="[a-z]+"\} (\d+)/gm)) total += Number(match[1]);
  return total;
}

import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startStack, type Stack } from "./helpers/mount.js";

/** `natsfs mount --all` over mutual TLS: every announced export is a folder of the mount root. */
describe("mount --all", { timeout: 120_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ insecure: false, exports: ["alpha", "beta"], mountAll: true });
  });
  after(async () => {
    await stack?.teardown();
  });

  it("lists the exports as read-only folders of the root", async () => {
    assert.deepEqual((await fs.readdir(stack.mountpoint)).sort(), ["alpha", "beta"]);
    assert.ok((await fs.stat(join(stack.mountpoint, "alpha"))).isDirectory());
    await assert.rejects(fs.mkdir(join(stack.mountpoint, "gamma")), { code: "EPERM" });
  });

  it("serves each export's own files and refuses to rename across exports with EXDEV", async () => {
    await fs.writeFile(join(stack.mountpoint, "alpha", "a.txt"), "in alpha");
    await fs.writeFile(join(stack.mountpoint, "beta", "b.txt"), "in beta");
    assert.equal(await fs.readFile(join(stack.exportDirs.alpha!, "a.txt"), "utf8"), "in alpha");
    assert.equal(await fs.readFile(join(stack.exportDirs.beta!, "b.txt"), "utf8"), "in beta");
    await assert.rejects(fs.rename(join(stack.mountpoint, "alpha", "a.txt"), join(stack.mountpoint, "beta", "a.txt")), { code: "EXDEV" });
    await assert.rejects(fs.link(join(stack.mountpoint, "alpha", "a.txt"), join(stack.mountpoint, "beta", "a.txt")), { code: "EXDEV" });
  });
});

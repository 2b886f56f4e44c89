import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run, startMountProcess, startStack, unmount, type Stack } from "./helpers/mount.js";
import type { Started } from "./helpers/processes.js";

/**
 * POSIX behaviour natsfs does not deliver through fuse-native 2.2.6, pinned down so a change is noticed:
 * locks are not shared between clients, and ioctls are not bound (fuse-native-facts.md). fallocate works
 * now: test/posix-completeness.test.ts.
 */
describe("what fuse-native cannot deliver", { timeout: 120_000 }, () => {
  let stack: Stack;
  let second: Started;
  let secondMountpoint: string;
  before(async () => {
    stack = await startStack({ insecure: true });
    secondMountpoint = join(stack.root, "second-mnt");
    await fs.mkdir(secondMountpoint);
    second = await startMountProcess(stack.bus, "data", secondMountpoint);
  });
  after(async () => {
    await unmount(secondMountpoint).catch(() => undefined);
    await second?.stop();
    await stack?.teardown();
  });

  it("flock locks are local to one mount: a second client takes the same exclusive lock", async () => {
    const first = join(stack.mountpoint, "locked");
    await fs.writeFile(first, "");
    const holder = run("flock", ["-x", "-n", first, "-c", "sleep 3"]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sameMount = await run("flock", ["-x", "-n", first, "-c", "true"]);
    assert.notEqual(sameMount.code, 0, "the same mount sees its own lock");
    const otherMount = await run("flock", ["-x", "-n", join(secondMountpoint, "locked"), "-c", "true"]);
    assert.equal(otherMount.code, 0, "another client is not told about the lock (no lock op to send it)");
    assert.equal((await holder).code, 0);
  });

  it("ioctls such as the inode flags of lsattr are not supported", async () => {
    await fs.writeFile(join(stack.mountpoint, "flags"), "");
    const flags = await run("lsattr", [join(stack.mountpoint, "flags")]);
    assert.notEqual(flags.code, 0);
    assert.match(flags.stderr, /Inappropriate ioctl|not supported|Function not implemented/i);
  });
});

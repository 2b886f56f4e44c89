/**
 * Two natsfs server instances export the same directory (one queue group). Killing one, then freezing
 * one (SIGSTOP) in the middle of copies in and out of the mount: the copies finish byte for byte.
 * The instance hit is the one holding the copies' open handles, so the client has to move them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  MiB,
  Rig,
  copyAcrossFault,
  assertCopiesIntact,
  reportRecovery,
  startFaultMount,
  startFsServer,
  startNatsNode,
  type FaultMount,
  type FsServer,
} from "./helpers/faults.js";

const SIZE = Number(process.env.NATSFS_FAULT_INSTANCES_MB ?? "200") * MiB;

describe("two server instances of one export", { timeout: 300_000 }, () => {
  let rig: Rig;
  let servers: FsServer[];
  let mount: FaultMount;

  before(async () => {
    rig = new Rig();
    const nats = await startNatsNode(rig);
    servers = [await startFsServer(rig, [nats.url]), await startFsServer(rig, [nats.url])];
    mount = await startFaultMount(rig, [nats.url], rig.newMountpoint());
  });

  after(async () => {
    await rig.teardown();
  });

  /** The instance holding the most open handles now (where the copies' files are open). */
  async function busiest(): Promise<FsServer> {
    const counts = await Promise.all(servers.map((s) => s.openHandles()));
    return servers[counts.indexOf(Math.max(...counts))]!;
  }

  it("keeps copies going when the instance holding their handles is killed", async (t) => {
    const remapsBefore = await mount.remaps();
    let victim: FsServer | undefined;
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "killed", async () => {
      victim = await busiest();
      await victim.kill();
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    assert.ok((await mount.remaps()) > remapsBefore, "the client moved the handles to the surviving instance");
    await victim!.restart();
  });

  it("keeps copies going while the instance holding their handles is frozen", async (t) => {
    const remapsBefore = await mount.remaps();
    let frozen: FsServer | undefined;
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "frozen", async () => {
      frozen = await busiest();
      rig.freeze(frozen.proc);
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    assert.ok((await mount.remaps()) > remapsBefore, "the client moved the handles away from the frozen instance");
    rig.thaw(frozen!.proc);
  });
});

/**
 * Faults of the bus itself, in the middle of copies in and out of the mount: the one nats-server is
 * killed and restarted on its port; in a 3-node cluster the node the mount uses is killed, then
 * frozen (SIGSTOP), then put into lame duck mode. Every copy finishes byte for byte.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import {
  MiB,
  Rig,
  copyAcrossFault,
  assertCopiesIntact,
  reportRecovery,
  killHard,
  lameDuck,
  mountNode,
  startCluster,
  startFaultMount,
  startFsServer,
  startNatsNode,
  waitClusterFormed,
  waitUntil,
  type FaultMount,
  type NatsNode,
} from "./helpers/faults.js";

const SIZE = Number(process.env.NATSFS_FAULT_BUS_MB ?? "150") * MiB;

describe("nats-server restarted on the same port", { timeout: 180_000 }, () => {
  let rig: Rig;
  let nats: NatsNode;
  let mount: FaultMount;

  before(async () => {
    rig = new Rig();
    nats = await startNatsNode(rig);
    await startFsServer(rig, [nats.url]);
    mount = await startFaultMount(rig, [nats.url], rig.newMountpoint());
  });

  after(async () => {
    await rig.teardown();
  });

  it("finishes copies in and out when nats-server is killed and comes back 2 s later", async (t) => {
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "natsrestart", async () => {
      await killHard(nats.proc);
      await sleep(2_000);
      await nats.restart();
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
  });
});

describe("3-node nats cluster", { timeout: 300_000 }, () => {
  let rig: Rig;
  let nodes: NatsNode[];
  let mount: FaultMount;

  before(async () => {
    rig = new Rig();
    nodes = await startCluster(rig, 3);
    const urls = nodes.map((n) => n.url);
    await startFsServer(rig, urls);
    mount = await startFaultMount(rig, urls, rig.newMountpoint());
  });

  after(async () => {
    await rig.teardown();
  });

  it("finishes copies when the node the mount uses is killed", async (t) => {
    let victim: NatsNode | undefined;
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "nodekilled", async () => {
      victim = await mountNode(mount, nodes);
      await killHard(victim.proc);
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    assert.notEqual((await mountNode(mount, nodes)).name, victim!.name, "the mount moved to another node");
    await victim!.restart();
    await waitClusterFormed(nodes);
  });

  it("finishes copies when the node the mount uses is frozen", async (t) => {
    let victim: NatsNode | undefined;
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "nodefrozen", async () => {
      victim = await mountNode(mount, nodes);
      rig.freeze(victim.proc);
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    assert.notEqual((await mountNode(mount, nodes)).name, victim!.name, "the mount moved to another node");
    rig.thaw(victim!.proc);
    await waitClusterFormed(nodes);
  });

  it("finishes copies when the node the mount uses goes into lame duck mode", async (t) => {
    let victim: NatsNode | undefined;
    const check = await copyAcrossFault(rig, mount.mountpoint, SIZE, "nodeldm", async () => {
      victim = await mountNode(mount, nodes);
      await lameDuck(victim);
    });
    await reportRecovery(t.name, check, mount);
    assertCopiesIntact(check, rig);
    // The client leaves on the lame duck notice, long before the node's 30 s are up.
    await waitUntil("the mount to leave the lame duck node", async () => (await mountNode(mount, nodes).catch(() => victim!)).name !== victim!.name, 20_000);
  });
});

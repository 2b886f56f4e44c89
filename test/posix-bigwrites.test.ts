/**
 * Large application writes must reach natsfs in large chunks: libfuse 2 sends 4 KiB writes unless
 * big_writes is on, which makes bulk writes ~30x more round trips. Counted from the op counters
 * on the metrics endpoints.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fetchMetrics, mustRun, sha256File, sumCounter } from "./fixtures/posix-common.js";
import { startStack, type Stack } from "./helpers/mount.js";
import { freePort } from "./helpers/ports.js";

const KiB = 1024;
const MiB = 1024 * KiB;

interface MetricsPorts {
  client: number;
  server: number;
}

/**
 * Successful write calls seen so far: the client's own op counter if it has one, else the server's.
 * The one place to adapt if the metric names change.
 */
async function writeCallsSeen(ports: MetricsPorts): Promise<{ count: number; source: string }> {
  const client = sumCounter(await fetchMetrics(ports.client), "natsfs_client_ops_total", { op: "write", result: "ok" });
  if (client !== undefined) return { count: client, source: "client natsfs_client_ops_total" };
  const server = sumCounter(await fetchMetrics(ports.server), "natsfs_server_ops_total", { op: "write", result: "ok" });
  if (server !== undefined) return { count: server, source: "server natsfs_server_ops_total" };
  // prom-client prints a labelled counter only once it has a sample, so "absent" means zero so far
  return { count: 0, source: "none yet" };
}

describe("big writes through the kernel", { timeout: 180_000 }, () => {
  let stack: Stack;
  let scratch: string;
  let ports: MetricsPorts;

  before(async () => {
    scratch = await fs.mkdtemp(join(tmpdir(), "natsfs-posix-bigwrites-"));
    ports = { client: await freePort(), server: await freePort() };
    stack = await startStack({
      insecure: true,
      extraServerArgs: ["--metrics-port", String(ports.server)],
      extraMountArgs: ["--metrics-port", String(ports.client)],
    });
  }, { timeout: 60_000 });

  after(async () => {
    await stack?.teardown();
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  }, { timeout: 60_000 });

  it("dd bs=1M of 4 MiB arrives as at most ~32 writes of >= 128 KiB, not 1024 of 4 KiB", { timeout: 60_000 }, async (t) => {
    const total = 4 * MiB;
    const source = join(scratch, "four-mib");
    await fs.writeFile(source, randomFillSync(Buffer.alloc(total)));
    const target = join(stack.mountpoint, "big-write.bin");

    const atStart = await writeCallsSeen(ports);
    await mustRun("dd", [`if=${source}`, `of=${target}`, "bs=1M", "count=4", "conv=fsync"]);
    const afterWrite = await writeCallsSeen(ports);
    const writes = afterWrite.count - atStart.count;

    t.diagnostic(`4 MiB written with ${writes} write calls (${afterWrite.source})`);
    assert.ok(afterWrite.source !== "none yet", "no write counter on either metrics endpoint");
    assert.ok(writes >= 1, `counted ${writes} writes via ${afterWrite.source}`);
    const largest = (total / (128 * KiB)) * 1.25; // 32 plus slack for a split at the end
    assert.ok(writes <= largest, `4 MiB took ${writes} write calls (${afterWrite.source}); at 128 KiB each it is 32`);

    const expected = await sha256File(source);
    assert.equal(await sha256File(target), expected);
    assert.equal(await sha256File(join(stack.exportDir, "big-write.bin")), expected);
  });
});

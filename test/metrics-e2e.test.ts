/**
 * Observability end to end: a real nats-server, `natsfs server` and a FUSE mount, both with metrics
 * endpoints, and a real Prometheus scraping both every second. Known I/O through the mount must move
 * the client's and the server's counters; a `kill -9` of the server with files held open must show
 * up as handle remaps and failovers (on /metrics, /status and in Prometheus), and flip the client's
 * /readyz to 503 while no server answers and back to 200 once one does.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MAX_DATA_BYTES } from "../src/protocol/index.js";
import { fetchMetrics, sha256File, sumCounter } from "./fixtures/posix-common.js";
import {
  MiB,
  Rig,
  startFaultMount,
  startFsServer,
  startNatsNode,
  startWorker,
  waitUntil,
  writeRandomFile,
  type FaultMount,
  type FsServer,
  type NatsNode,
} from "./helpers/faults.js";
import { freePort } from "./helpers/ports.js";
import { start, waitFor } from "./helpers/processes.js";

const EXPORT = "data";
const BIG_FILE_BYTES = 3 * MiB;
const SMALL_FILES = 10;
const HELD_FILES = 5;
const HELD_FILE_BYTES = 256 * 1024;

const TIMEOUTS = {
  prometheusReadyMs: 20_000,
  /** A few 1 s scrapes and an evaluation. */
  prometheusSeesMs: 20_000,
  workerMs: 60_000,
  /** The client's readiness probe gives up on an export after 2 s; a few rounds of it. */
  readyzFlipMs: 10_000,
  readyzBackMs: 20_000,
  /** One HTTP call; /readyz may spend the probe's 2 s before answering. */
  httpMs: 5_000,
} as const;

interface PromResult {
  status: string;
  error?: string;
  data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

async function getJson(url: string): Promise<HttpAnswer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUTS.httpMs) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Sum of every sample of a counter (all label sets) on a /metrics page, 0 when absent. */
function total(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  return sumCounter(metricsText, name, labels) ?? 0;
}

function sumValues(record: unknown): number {
  return Object.values(record as Record<string, number>).reduce((a, b) => a + b, 0);
}

describe("observability end to end: real I/O, a server kill -9, Prometheus", { timeout: 120_000 }, () => {
  let rig: Rig;
  let nats: NatsNode;
  let server: FsServer;
  let mount: FaultMount;
  let prometheusUrl: string;

  async function promQuery(expression: string): Promise<PromResult> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expression)}`, {
      signal: AbortSignal.timeout(TIMEOUTS.httpMs),
    });
    const result = (await response.json()) as PromResult;
    assert.equal(result.status, "success", `PromQL ${expression}: ${result.error}`);
    return result;
  }

  async function promScalar(expression: string): Promise<number | undefined> {
    const first = (await promQuery(expression)).data?.result[0];
    return first === undefined ? undefined : Number(first.value[1]);
  }

  const clientMetrics = () => mount.metrics();
  const serverMetrics = () => fetchMetrics(server.metricsPort);
  const serverUrl = () => `http://127.0.0.1:${server.metricsPort}`;

  before(async () => {
    rig = new Rig();
    nats = await startNatsNode(rig);
    server = await startFsServer(rig, [nats.url], EXPORT);
    mount = await startFaultMount(rig, [nats.url], rig.newMountpoint(), { exportName: EXPORT });

    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    const configPath = join(rig.root, "prometheus.yml");
    writeFileSync(
      configPath,
      [
        "global: { scrape_interval: 1s, evaluation_interval: 1s }",
        "scrape_configs:",
        "  - job_name: natsfs-client",
        `    static_configs: [{ targets: [${JSON.stringify(new URL(mount.metricsUrl).host)}] }]`,
        "  - job_name: natsfs-server",
        `    static_configs: [{ targets: ["127.0.0.1:${server.metricsPort}"] }]`,
        "",
      ].join("\n"),
    );
    const prometheus = rig.track(
      start("prometheus", [`--config.file=${configPath}`, `--storage.tsdb.path=${join(rig.root, "prometheus-data")}`, `--web.listen-address=127.0.0.1:${port}`]),
      "prometheus",
    );
    await waitFor("prometheus to be ready", async () => (await fetch(`${prometheusUrl}/-/ready`)).ok, TIMEOUTS.prometheusReadyMs).catch((err) => {
      throw new Error(`${(err as Error).message}\n${prometheus.output().slice(-3000)}`);
    });
  });

  after(async () => {
    await rig?.teardown();
  });

  it(`known I/O moves the client's and the server's counters (${BIG_FILE_BYTES / MiB} MiB written and read, ${SMALL_FILES} files created)`, async (t) => {
    const [clientBefore, serverBefore] = await Promise.all([clientMetrics(), serverMetrics()]);
    const worker = startWorker(rig, ioScript({ mnt: mount.mountpoint, bigBytes: BIG_FILE_BYTES, smallFiles: SMALL_FILES }), "I/O worker");
    const line = await worker.waitLine(/^(RESULT|ERROR) /, TIMEOUTS.workerMs);
    assert.match(line, /^RESULT /, `${line}\n${rig.logs()}`);
    const result = JSON.parse(line.slice("RESULT ".length)) as { sha: string; readBackSha: string };
    assert.equal(await worker.exited(10_000), 0);
    assert.equal(result.readBackSha, result.sha, "the 3 MiB file read back through the mount");
    assert.equal(await sha256File(join(rig.exportDir, "big.bin")), result.sha, "the 3 MiB file on the server's disk");

    const [clientAfter, serverAfter] = await Promise.all([clientMetrics(), serverMetrics()]);
    const clientRise = (name: string, labels: Record<string, string> = {}) => total(clientAfter, name, labels) - total(clientBefore, name, labels);
    const serverRise = (name: string, labels: Record<string, string> = {}) => total(serverAfter, name, labels) - total(serverBefore, name, labels);
    // One request carries at most MAX_DATA_BYTES of file data: the least number of read and write requests.
    const dataRequests = Math.ceil(BIG_FILE_BYTES / MAX_DATA_BYTES);
    const rises = {
      client: {
        write: clientRise("natsfs_client_ops_total", { op: "write", result: "ok" }),
        read: clientRise("natsfs_client_ops_total", { op: "read", result: "ok" }),
        create: clientRise("natsfs_client_ops_total", { op: "create", result: "ok" }),
        writtenBytes: clientRise("natsfs_client_written_bytes_total"),
        readBytes: clientRise("natsfs_client_read_bytes_total"),
      },
      server: {
        write: serverRise("natsfs_server_ops_total", { export: EXPORT, op: "write", result: "ok" }),
        read: serverRise("natsfs_server_ops_total", { export: EXPORT, op: "read", result: "ok" }),
        create: serverRise("natsfs_server_ops_total", { export: EXPORT, op: "create", result: "ok" }),
        writtenBytes: serverRise("natsfs_server_written_bytes_total", { export: EXPORT }),
        readBytes: serverRise("natsfs_server_read_bytes_total", { export: EXPORT }),
      },
    };
    t.diagnostic(`counter rises: ${JSON.stringify(rises)}`);
    for (const role of ["client", "server"] as const) {
      const rise = rises[role];
      assert.ok(rise.write >= dataRequests, `${role} write ops rose by ${rise.write}, expected >= ${dataRequests}`);
      assert.ok(rise.read >= dataRequests, `${role} read ops rose by ${rise.read}, expected >= ${dataRequests}`);
      assert.ok(rise.create >= SMALL_FILES + 1, `${role} create ops rose by ${rise.create}, expected >= ${SMALL_FILES + 1}`);
      assert.ok(rise.writtenBytes >= BIG_FILE_BYTES, `${role} written bytes rose by ${rise.writtenBytes}, expected >= ${BIG_FILE_BYTES}`);
      assert.ok(rise.readBytes >= BIG_FILE_BYTES, `${role} read bytes rose by ${rise.readBytes}, expected >= ${BIG_FILE_BYTES}`);
    }
  });

  it(`a server kill -9 with ${HELD_FILES} files held open: /readyz flips, handles are remapped, /status and Prometheus see it`, async (t) => {
    for (let i = 0; i < HELD_FILES; i++) writeRandomFile(join(rig.exportDir, `held${i}`), HELD_FILE_BYTES);
    const worker = startWorker(rig, holderScript({ mnt: mount.mountpoint, files: HELD_FILES, size: HELD_FILE_BYTES }), "handle holder");
    await worker.waitLine(/^HELD$/, TIMEOUTS.workerMs);

    const clientBefore = await clientMetrics();
    const remapsBefore = total(clientBefore, "natsfs_client_handle_remaps_total", { result: "ok" });
    const failoversBefore = total(clientBefore, "natsfs_client_failovers_total");
    // Prometheus must hold the pre-fault value, so that a later rise is a rise it saw.
    await waitUntil(
      "Prometheus to scrape the pre-fault failover count",
      async () => (await promScalar("sum(natsfs_client_failovers_total)")) === failoversBefore,
      TIMEOUTS.prometheusSeesMs,
    );

    assert.equal((await getJson(`${serverUrl()}/readyz`)).status, 200, "server /readyz while it runs");
    assert.equal((await getJson(`${mount.metricsUrl}/readyz`)).status, 200, "client /readyz before the fault");
    assert.equal((await getJson(`${mount.metricsUrl}/healthz`)).status, 200, "client /healthz before the fault");

    await server.kill();

    let notReady: HttpAnswer | undefined;
    await waitUntil(
      "the client's /readyz to turn 503 while no server answers",
      async () => {
        const answer = await getJson(`${mount.metricsUrl}/readyz`);
        if (answer.status === 503) notReady = answer;
        return answer.status === 503;
      },
      TIMEOUTS.readyzFlipMs,
    );
    t.diagnostic(`client /readyz during the outage: 503 ${JSON.stringify(notReady!.body)}`);
    assert.equal(notReady!.body.status, "not ready");
    assert.ok(typeof notReady!.body.reason === "string" && notReady!.body.reason.includes(EXPORT), `a reason naming the export: ${JSON.stringify(notReady!.body)}`);
    assert.equal((await getJson(`${mount.metricsUrl}/healthz`)).status, 200, "client /healthz during the outage");

    await server.restart();
    assert.equal((await getJson(`${serverUrl()}/readyz`)).status, 200, "server /readyz after the restart");
    await waitUntil("the client's /readyz to be 200 again", async () => (await getJson(`${mount.metricsUrl}/readyz`)).status === 200, TIMEOUTS.readyzBackMs);
    assert.equal((await getJson(`${mount.metricsUrl}/healthz`)).status, 200, "client /healthz after the restart");

    worker.send("GO");
    const line = await worker.waitLine(/^RESULT /, TIMEOUTS.workerMs);
    const report = JSON.parse(line.slice("RESULT ".length)) as { errors: string[]; contents: string[] };
    assert.deepEqual(report.errors, [], `held files failed after the restart\n${rig.logs()}`);
    assert.equal(await worker.exited(10_000), 0);
    for (let i = 0; i < HELD_FILES; i++) {
      assert.equal(await sha256File(join(rig.exportDir, `held${i}`)), report.contents[i], `held${i} on the server's disk matches what the holder read and wrote`);
    }

    const clientAfter = await clientMetrics();
    const remaps = total(clientAfter, "natsfs_client_handle_remaps_total", { result: "ok" }) - remapsBefore;
    const failovers = total(clientAfter, "natsfs_client_failovers_total") - failoversBefore;
    const byReason = clientAfter.split("\n").filter((l) => l.startsWith("natsfs_client_failovers_total{")).join(", ");
    t.diagnostic(`after the restart: remaps{result="ok"} +${remaps}, failovers +${failovers} (${byReason})`);
    assert.ok(remaps >= HELD_FILES, `expected >= ${HELD_FILES} handle remaps, the client counted ${remaps}`);
    assert.ok(failovers >= HELD_FILES, `expected >= ${HELD_FILES} failovers, the client counted ${failovers}`);

    const status = (await getJson(`${mount.metricsUrl}/status`)).body;
    t.diagnostic(`client /status: natsServer ${String(status.natsServer)}, failovers ${JSON.stringify(status.failovers)}, remaps ${JSON.stringify(status.remaps)}`);
    assert.equal(status.role, "client");
    assert.ok(String(status.natsServer ?? "").endsWith(`:${nats.port}`), `/status names the nats server in use (${nats.address}): ${String(status.natsServer)}`);
    assert.ok((status.remaps as Record<string, number>).ok! >= remapsBefore + HELD_FILES, `/status remaps: ${JSON.stringify(status.remaps)}`);
    assert.ok(sumValues(status.failovers) >= failoversBefore + HELD_FILES, `/status failovers: ${JSON.stringify(status.failovers)}`);

    // The same fault as Prometheus saw it.
    const expected = failoversBefore + HELD_FILES;
    let seen: number | undefined;
    await waitUntil(
      `Prometheus to see sum(natsfs_client_failovers_total) >= ${expected}`,
      async () => ((seen = await promScalar("sum(natsfs_client_failovers_total)")) ?? 0) >= expected,
      TIMEOUTS.prometheusSeesMs,
    );
    let increase: number | undefined;
    await waitUntil(
      "Prometheus increase() to show the rise",
      async () => ((increase = await promScalar("sum(increase(natsfs_client_failovers_total[1m]))")) ?? 0) > 0,
      TIMEOUTS.prometheusSeesMs,
    );
    t.diagnostic(`Prometheus: sum(natsfs_client_failovers_total) = ${seen}, sum(increase(...[1m])) = ${increase}`);
    for (const job of ["natsfs-client", "natsfs-server"]) {
      await waitUntil(`Prometheus up{job="${job}"} == 1 after the restart`, async () => (await promScalar(`up{job="${job}"}`)) === 1, TIMEOUTS.prometheusSeesMs);
    }
  });
});

/**
 * Writes a random file of `bigBytes` through the mount (fsync, close), reads it back through a fresh
 * descriptor, and creates `smallFiles` small files; prints both digests.
 */
function ioScript(config: { mnt: string; bigBytes: number; smallFiles: number }): string {
  return `
import fs from "node:fs";
import { createHash, randomBytes } from "node:crypto";
const c = ${JSON.stringify(config)};
const sha = (b) => createHash("sha256").update(b).digest("hex");
try {
  const data = randomBytes(c.bigBytes);
  const fd = fs.openSync(c.mnt + "/big.bin", "w");
  for (let at = 0; at < data.length; ) at += fs.writeSync(fd, data, at, data.length - at, at);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const back = fs.readFileSync(c.mnt + "/big.bin");
  for (let i = 0; i < c.smallFiles; i++) fs.writeFileSync(c.mnt + "/small" + i, "file " + i + "\\n");
  console.log("RESULT " + JSON.stringify({ sha: sha(data), readBackSha: sha(back) }));
} catch (e) {
  console.log("ERROR " + e.code + " " + e.message);
  process.exit(1);
}
`;
}

/**
 * Opens each held file read-write and reads its first half, waits for GO (the server is killed and
 * restarted meanwhile), then through the same descriptors reads the second half, overwrites the
 * first 4 KiB and fsyncs; prints the sha256 each file should now have on disk, and every error.
 */
function holderScript(config: { mnt: string; files: number; size: number }): string {
  return `
import fs from "node:fs";
import readline from "node:readline";
import { createHash, randomBytes } from "node:crypto";
const c = ${JSON.stringify(config)};
const half = c.size / 2;
const errors = [], contents = [];
const fds = [], bufs = [];
for (let i = 0; i < c.files; i++) {
  fds.push(fs.openSync(c.mnt + "/held" + i, "r+"));
  bufs.push(Buffer.alloc(c.size));
  for (let at = 0; at < half; ) at += fs.readSync(fds[i], bufs[i], at, half - at, at);
}
console.log("HELD");
const rl = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once("line", resolve));
rl.close();
for (let i = 0; i < c.files; i++) {
  try {
    for (let at = half; at < c.size; ) {
      const n = fs.readSync(fds[i], bufs[i], at, c.size - at, at);
      if (n === 0) throw new Error("early EOF at " + at);
      at += n;
    }
    const patch = randomBytes(4096);
    fs.writeSync(fds[i], patch, 0, patch.length, 0);
    fs.fsyncSync(fds[i]);
    patch.copy(bufs[i], 0);
    fs.closeSync(fds[i]);
  } catch (e) {
    errors.push("held" + i + ": " + e.code + " " + e.message);
  }
  contents.push(createHash("sha256").update(bufs[i]).digest("hex"));
}
console.log("RESULT " + JSON.stringify({ errors, contents }));
`;
}

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createServerMetrics, startMetricsServer, type MetricsServer, type Readiness } from "../src/metrics/index.js";

describe("metrics HTTP endpoint", () => {
  const metrics = createServerMetrics({ exportNames: ["home"], identity: "fileserver", version: "1.2.3" });
  let readiness: Readiness | Error = { ready: false, reason: "not connected to NATS" };
  let server: MetricsServer;

  before(async () => {
    server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      registry: metrics.registry,
      ready: async () => {
        if (readiness instanceof Error) throw readiness;
        return readiness;
      },
      status: () => metrics.snapshot(),
    });
  });
  after(() => server.close());

  test("port 0 binds a real port and reports it", () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(server.url).port, "0");
  });

  test("/metrics serves the registry in the Prometheus text format", async () => {
    metrics.observer.opFinished("home", "read", "alice", 0, 0.001);
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const body = await response.text();
    assert.match(body, /^natsfs_server_ops_total\{export="home",op="read",identity="alice",result="ok"\} 1$/m);
    assert.match(body, /^natsfs_build_info\{version="1\.2\.3",role="server"\} 1$/m);
  });

  test("/healthz answers ok", async () => {
    const response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: "ok" });
  });

  test("/readyz follows the readiness check", async () => {
    readiness = { ready: false, reason: "not connected to NATS" };
    let response = await fetch(`${server.url}/readyz`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { status: "not ready", reason: "not connected to NATS" });

    readiness = new Error("export home: ENOENT");
    response = await fetch(`${server.url}/readyz`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { status: "not ready", reason: "export home: ENOENT" });

    readiness = { ready: true };
    response = await fetch(`${server.url}/readyz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: "ready" });
  });

  test("/status returns the snapshot as JSON", async () => {
    metrics.epochStarted("inst-1", "ep-1");
    const response = await fetch(`${server.url}/status`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /application\/json/);
    const status = (await response.json()) as Record<string, unknown>;
    assert.equal(status.role, "server");
    assert.equal(status.instance, "inst-1");
    assert.equal(status.epoch, "ep-1");
    assert.deepEqual(status.ops, { total: 1, failed: 0 });
  });

  test("unknown paths are 404", async () => {
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  });
});

test("close() releases the port", async () => {
  const metrics = createServerMetrics({ exportNames: [], identity: "s", version: "1" });
  const server = await startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    registry: metrics.registry,
    ready: async () => ({ ready: true }),
    status: () => metrics.snapshot(),
  });
  await server.close();
  await assert.rejects(fetch(`${server.url}/healthz`));
});

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { Registry } from "prom-client";
import { createClientMetrics, createServerMetrics, metricsReference, observeCertificateExpiry } from "../src/metrics/index.js";
import { ERRNO, OP_NAMES } from "../src/protocol/index.js";

/** Value of one sample line in the Prometheus text format, e.g. `name{a="b"}`; undefined when absent. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("client metrics", () => {
  test("observer events show up in the registry and in the snapshot", async () => {
    const metrics = createClientMetrics({ exportNames: ["home", "public"], identity: "alice", version: "9.9.9", instance: "c1" });
    const { observer, registry } = metrics;

    observer.connectionState(true, "tls://127.0.0.1:4222");
    observer.opStarted("read");
    observer.opStarted("getattr");
    observer.opFinished("read", 0, 0.002);
    observer.opFinished("getattr", ERRNO.ENOENT!, 0.0003);
    observer.opStarted("write");
    observer.bytesRead(4096);
    observer.bytesWritten(100);
    observer.bytesWritten(-5); // a bug upstream must not make the counter throw
    observer.retry("write", "timeout");
    observer.failover("timeout");
    observer.failover("timeout");
    observer.failover("stale_handle");
    observer.remap("ok");
    observer.reconnect("tls://127.0.0.1:4223");
    observer.exportReachable("home", true);
    observer.exportReachable("public", false);
    observer.openHandles(3);
    observer.lastError("EIO: write /home/x.txt");

    assert.equal(await sample(registry, 'natsfs_client_ops_total{op="read",result="ok"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_ops_total{op="getattr",result="ENOENT"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_op_duration_seconds_count{op="read"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_op_duration_seconds_bucket{le="0.0025",op="read"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_op_duration_seconds_bucket{le="0.001",op="read"}'), 0);
    assert.equal(await sample(registry, "natsfs_client_read_bytes_total"), 4096);
    assert.equal(await sample(registry, "natsfs_client_written_bytes_total"), 100);
    assert.equal(await sample(registry, "natsfs_client_ops_in_flight"), 1);
    assert.equal(await sample(registry, "natsfs_client_open_handles"), 3);
    assert.equal(await sample(registry, 'natsfs_client_failovers_total{reason="timeout"}'), 2);
    assert.equal(await sample(registry, 'natsfs_client_failovers_total{reason="stale_handle"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_handle_remaps_total{result="ok"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_retries_total{op="write",reason="timeout"}'), 1);
    assert.equal(await sample(registry, "natsfs_client_bus_reconnects_total"), 1);
    assert.equal(await sample(registry, "natsfs_client_bus_connected"), 1);
    assert.equal(await sample(registry, 'natsfs_client_export_reachable{export="home"}'), 1);
    assert.equal(await sample(registry, 'natsfs_client_export_reachable{export="public"}'), 0);
    assert.equal(await sample(registry, 'natsfs_build_info{version="9.9.9",role="client"}'), 1);
    assert.ok((await registry.metrics()).includes("process_cpu_user_seconds_total"), "default metrics are collected");

    const status = metrics.snapshot();
    assert.equal(status.role, "client");
    assert.equal(status.identity, "alice");
    assert.equal(status.instance, "c1");
    assert.deepEqual(status.exports, [
      { name: "home", reachable: true },
      { name: "public", reachable: false },
    ]);
    assert.equal(status.natsServer, "tls://127.0.0.1:4223");
    assert.equal(status.connected, true);
    assert.deepEqual(status.ops, { total: 2, failed: 1 });
    assert.equal(status.opsInFlight, 1);
    assert.deepEqual(status.bytes, { read: 4096, written: 100 });
    assert.deepEqual(status.failovers, { no_responders: 0, timeout: 2, stale_handle: 1, disconnected: 0 });
    assert.deepEqual(status.remaps, { ok: 1, failed: 0 });
    assert.equal(status.retries, 1);
    assert.equal(status.reconnects, 1);
    assert.equal(status.openHandles, 3);
    assert.equal(status.lastError?.message, "EIO: write /home/x.txt");
    assert.doesNotThrow(() => JSON.stringify(status));
  });

  test("series that alerts and rate() read exist at 0 before any event", async () => {
    const { registry, snapshot } = createClientMetrics({ exportNames: [], identity: "bob", version: "1" });
    for (const reason of ["no_responders", "timeout", "stale_handle", "disconnected"]) {
      assert.equal(await sample(registry, `natsfs_client_failovers_total{reason="${reason}"}`), 0, reason);
    }
    assert.equal(await sample(registry, 'natsfs_client_handle_remaps_total{result="ok"}'), 0);
    assert.equal(await sample(registry, 'natsfs_client_handle_remaps_total{result="failed"}'), 0);
    for (const op of OP_NAMES) assert.equal(await sample(registry, `natsfs_client_ops_total{op="${op}",result="ok"}`), 0, op);
    assert.equal(await sample(registry, "natsfs_client_bus_connected"), 0);
    assert.equal(snapshot().connected, false);
  });

  test("labels never carry paths or ids", async () => {
    const { registry, observer } = createClientMetrics({ exportNames: ["home"], identity: "alice", version: "1" });
    observer.lastError("ENOENT: open /home/secret/file-1234");
    observer.opFinished("open", ERRNO.ENOENT!, 0.01);
    const text = await registry.metrics();
    assert.ok(!text.includes("/home/secret"));
    assert.ok(!text.includes("alice"), "identity is in /status, not a label on every client series");
  });
});

describe("server metrics", () => {
  test("observer events show up in the registry and in the snapshot", async () => {
    const metrics = createServerMetrics({
      exportNames: ["home", "public"],
      identity: "fileserver",
      version: "9.9.9",
      knownIdentities: ["alice", "bob"],
    });
    const { observer, registry } = metrics;
    metrics.epochStarted("inst-a", "epoch-1", new Date(1_700_000_000_000));
    observer.connectionState(true, "tls://127.0.0.1:4222");
    observer.opFinished("home", "read", "alice", 0, 0.0004);
    observer.opFinished("home", "unlink", "alice", ERRNO.EACCES!, 0.001);
    observer.opFinished("home", "read", "mallory", 0, 0.001);
    observer.bytesRead("home", 1000);
    observer.bytesWritten("public", 10);
    observer.openHandles("home", 2);
    observer.openHandles("public", 1);
    observer.duplicateRequestHit("home");
    observer.denial("public", "bob", "read_only");
    observer.denial("nonexistent-export-name", "bob", "unknown_export");
    observer.malformedRequest();

    assert.equal(await sample(registry, 'natsfs_server_ops_total{export="home",op="read",identity="alice",result="ok"}'), 1);
    assert.equal(await sample(registry, 'natsfs_server_ops_total{export="home",op="unlink",identity="alice",result="EACCES"}'), 1);
    assert.equal(await sample(registry, 'natsfs_server_ops_total{export="home",op="read",identity="_other",result="ok"}'), 1);
    assert.equal(await sample(registry, 'natsfs_server_op_duration_seconds_count{export="home",op="read"}'), 2);
    assert.equal(await sample(registry, 'natsfs_server_read_bytes_total{export="home"}'), 1000);
    assert.equal(await sample(registry, 'natsfs_server_written_bytes_total{export="public"}'), 10);
    assert.equal(await sample(registry, 'natsfs_server_open_handles{export="home"}'), 2);
    assert.equal(await sample(registry, 'natsfs_server_duplicate_request_hits_total{export="home"}'), 1);
    assert.equal(await sample(registry, 'natsfs_server_duplicate_request_hits_total{export="public"}'), 0);
    assert.equal(await sample(registry, 'natsfs_server_denials_total{export="public",identity="bob",reason="read_only"}'), 1);
    assert.equal(await sample(registry, 'natsfs_server_denials_total{export="_other",identity="bob",reason="unknown_export"}'), 1);
    assert.equal(await sample(registry, "natsfs_server_malformed_requests_total"), 1);
    assert.equal(await sample(registry, "natsfs_server_bus_connected"), 1);
    assert.equal(await sample(registry, "natsfs_server_epoch_start_time_seconds"), 1_700_000_000);
    assert.equal(await sample(registry, 'natsfs_build_info{version="9.9.9",role="server"}'), 1);
    assert.ok(!(await registry.metrics()).includes("mallory"));

    const status = metrics.snapshot();
    assert.equal(status.role, "server");
    assert.equal(status.instance, "inst-a");
    assert.equal(status.epoch, "epoch-1");
    assert.equal(status.openHandles, 3);
    assert.deepEqual(status.exports, [
      { name: "home", openHandles: 2 },
      { name: "public", openHandles: 1 },
    ]);
    assert.deepEqual(status.ops, { total: 3, failed: 1 });
    assert.deepEqual(status.bytes, { read: 1000, written: 10 });
    assert.equal(status.duplicateRequestHits, 1);
    assert.equal(status.denials.read_only, 1);
    assert.equal(status.denials.unknown_export, 1);
    assert.equal(status.malformedRequests, 1);
    assert.equal(status.natsServer, "tls://127.0.0.1:4222");
  });

  test("client and server registries live side by side in one process", async () => {
    const client = createClientMetrics({ exportNames: [], identity: "a", version: "1" });
    const server = createServerMetrics({ exportNames: [], identity: "s", version: "1" });
    assert.notEqual(client.registry, server.registry);
    assert.ok((await server.registry.metrics()).includes("natsfs_server_ops_total"));
    assert.ok(!(await server.registry.metrics()).includes("natsfs_client_"));
  });
});

describe("certificate expiry", () => {
  const dir = mkdtempSync(join(tmpdir(), "natsfs-metrics-cert-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the gauge carries the certificate's notAfter", async () => {
    const certPath = join(dir, "cert.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(dir, "key.pem"), "-out", certPath, "-days", "10", "-subj", "/CN=alice",
    ], { stdio: "ignore" });
    const { registry } = createClientMetrics({ exportNames: [], identity: "alice", version: "1" });
    const notAfter = observeCertificateExpiry(registry, "alice", readFileSync(certPath, "utf8"));
    const daysLeft = (notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(daysLeft > 9.9 && daysLeft <= 10, `expires in ${daysLeft} days`);
    assert.equal(await sample(registry, 'natsfs_cert_expiry_timestamp_seconds{identity="alice"}'), notAfter.getTime() / 1000);
  });

  test("garbage is refused with an error, not recorded", () => {
    const { registry } = createServerMetrics({ exportNames: [], identity: "s", version: "1" });
    assert.throws(() => observeCertificateExpiry(registry, "s", "not a certificate"));
  });
});

test("metricsReference lists every natsfs metric of both roles", async () => {
  const reference = metricsReference();
  const client = createClientMetrics({ exportNames: [], identity: "a", version: "1" });
  const server = createServerMetrics({ exportNames: [], identity: "s", version: "1" });
  for (const registry of [client.registry, server.registry]) {
    for (const metric of registry.getMetricsAsArray()) {
      if (metric.name.startsWith("natsfs_")) assert.ok(reference.includes(`| \`${metric.name}\` |`), metric.name);
    }
  }
  assert.match(reference, /^\| Metric \| Type \| Labels \| Role \| Meaning \|$/m);
});

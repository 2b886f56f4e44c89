import assert from "node:assert/strict";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { countsByKey, renderStatus, statusUrl } from "../src/cli/status.js";
import { createClientMetrics, startMetricsServer, type MetricsServer } from "../src/metrics/index.js";
import { freePort } from "./helpers/ports.js";
import { start, waitFor, type Started } from "./helpers/processes.js";

const CLI = ["--import", "tsx", fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))];

/** Runs the real CLI to completion (asynchronously: the endpoint it asks lives in this process). */
async function runCli(args: string[]): Promise<{ code: number | null; output: string }> {
  const cli = start(process.execPath, [...CLI, ...args]);
  const timer = setTimeout(() => void cli.stop("SIGKILL"), 20_000);
  const [code] = (await once(cli.child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, output: cli.output() };
}

describe("statusUrl", () => {
  test("accepts a base URL, one ending in /status, or host:port", () => {
    assert.equal(statusUrl("http://127.0.0.1:9100"), "http://127.0.0.1:9100/status");
    assert.equal(statusUrl("http://127.0.0.1:9100/"), "http://127.0.0.1:9100/status");
    assert.equal(statusUrl("http://127.0.0.1:9100/status"), "http://127.0.0.1:9100/status");
    assert.equal(statusUrl("http://host:9100/natsfs/"), "http://host:9100/natsfs/status");
    assert.equal(statusUrl("127.0.0.1:9101"), "http://127.0.0.1:9101/status");
  });
  test("refuses what is not an http URL", () => {
    assert.throws(() => statusUrl("ftp://x/"), /not an http/);
    assert.throws(() => statusUrl("http://"), /not a URL/);
  });
});

test("countsByKey totals and lists the non-zero reasons", () => {
  assert.equal(countsByKey({ timeout: 2, no_responders: 1, disconnected: 0 }), "3 (timeout 2, no_responders 1)");
  assert.equal(countsByKey({ ok: 0, failed: 0 }), "0");
  assert.equal(countsByKey(undefined), "-");
});

test("renderStatus shows every row of the table", () => {
  const metrics = createClientMetrics({ exportNames: ["home"], identity: "alice", version: "0.1.0", instance: "c-1" });
  metrics.observer.connectionState(true, "tls://nats:4222");
  metrics.observer.exportReachable("home", false);
  metrics.observer.failover("timeout");
  metrics.observer.lastError("ETIMEDOUT: read home/a");
  const table = renderStatus(metrics.snapshot());
  for (const pattern of [
    /^role +client +identity alice +version 0\.1\.0$/m,
    /^exports +home \(UNREACHABLE\)$/m,
    /^instance +c-1$/m,
    /^epoch +-$/m,
    /^NATS server +tls:\/\/nats:4222$/m,
    /^connected +yes$/m,
    /^open handles +0$/m,
    /^ops +0 \(0 failed, 0 in flight\)$/m,
    /^failovers +1 \(timeout 1\)$/m,
    /^remaps +0$/m,
    /^retries +0$/m,
    /^last error +ETIMEDOUT: read home\/a \(at /m,
  ]) {
    assert.match(table, pattern);
  }
});

describe("natsfs status against a live endpoint", () => {
  const metrics = createClientMetrics({ exportNames: ["home"], identity: "alice", version: "0.1.0" });
  let server: MetricsServer;
  let watcher: Started | undefined;

  before(async () => {
    server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      registry: metrics.registry,
      ready: async () => ({ ready: true }),
      status: () => metrics.snapshot(),
    });
  });
  after(async () => {
    await watcher?.stop("SIGKILL");
    await server.close();
  });

  test("prints the table once and exits 0", async () => {
    metrics.observer.remap("ok");
    metrics.observer.remap("failed");
    const { code, output } = await runCli(["status", server.url]);
    assert.equal(code, 0, output);
    assert.match(output, /^remaps +2 \(ok 1, failed 1\)$/m);
    assert.match(output, /^connected +NO$/m);
  });

  test("--watch redraws until Ctrl-C", async () => {
    watcher = start(process.execPath, [...CLI, "status", "--watch", "--interval", "0.2", `${server.url}/status`]);
    const redraws = () => watcher!.output().split("(Ctrl-C to stop)").length - 1;
    await waitFor("two redraws", () => redraws() >= 2, 20_000);
    metrics.observer.failover("no_responders");
    const seen = redraws();
    await waitFor("a redraw after the failover", () => redraws() > seen && /^failovers +1 \(no_responders 1\)$/m.test(watcher!.output()), 10_000);
    const exited = once(watcher.child, "exit", { signal: AbortSignal.timeout(10_000) });
    watcher.child.kill("SIGINT");
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, "watch stops cleanly on Ctrl-C");
  });

  test("an unreachable endpoint exits 1 with one line", async () => {
    const port = await freePort();
    const { code, output } = await runCli(["status", `http://127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.equal(output.trim().split("\n").length, 1, output);
    assert.match(output, /^natsfs: cannot reach http:\/\/127\.0\.0\.1:\d+\/status \(ECONNREFUSED\)/);
  });

  test("a bad URL is a usage error (exit 2)", async () => {
    const { code, output } = await runCli(["status", "ftp://127.0.0.1/"]);
    assert.equal(code, 2, output);
  });
});

// The benchmark's pure pieces (not part of `make test`, which runs no file under test/bench/):
//   node --import tsx --test test/bench/lib/bench.test.ts
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dataPathCounters, meanMessageBytes, metricSum } from "./bus.js";
import { benchConfig } from "./config.js";
import { measures, requiredValue } from "./measures.js";
import { placeOf, summarizeProfile } from "./profile.js";
import { formatNumber, renderTable } from "./table.js";

const config = benchConfig({});
const row = (key: string) => measures(config, 1e6).find((m) => m.key === key)!;

describe("bench config", () => {
  it("has the issue's sizes by default and small ones in quick mode", () => {
    assert.equal(config.seqMiB, 512);
    assert.equal(config.lsEntries, 10_000);
    assert.equal(benchConfig({ BENCH_QUICK: "1" }).seqMiB, 32);
    assert.equal(benchConfig({ BENCH_QUICK: "1", BENCH_SEQ_MB: "64" }).seqMiB, 64);
  });
  it("parses lists and refuses unknown targets", () => {
    assert.deepEqual(benchConfig({ BENCH_TARGETS: "natsfs, sshfs" }).targets, ["natsfs", "sshfs"]);
    assert.deepEqual(benchConfig({ BENCH_BUS_IN_FLIGHT: "4" }).busInFlight, [4]);
    assert.throws(() => benchConfig({ BENCH_TARGETS: "nfs" }), /BENCH_TARGETS/);
  });
});

describe("targets", () => {
  it("asks sequential rows for sshfs's rate and 70 % of the bus, whichever is more", () => {
    assert.equal(requiredValue(row("seqRead"), { sshfs: 100, bus: 300, budgetMiB: 256 }), 210);
    assert.equal(requiredValue(row("seqRead"), { sshfs: 250, bus: 300, budgetMiB: 256 }), 250);
    assert.equal(requiredValue(row("seqRead"), { sshfs: 250, budgetMiB: 256 }), undefined);
  });
  it("asks metadata rows for 1.5× sshfs or 60 % of the adapter, whichever is lower", () => {
    assert.equal(requiredValue(row("stat"), { sshfs: 1000, adapter: 5000, budgetMiB: 256 }), 1500);
    assert.equal(requiredValue(row("stat"), { sshfs: 1000, adapter: 2000, budgetMiB: 256 }), 1200);
    assert.equal(requiredValue(row("stat"), { sshfs: 1000, adapter: 1000, budgetMiB: 256 }), 1000);
  });
  it("turns rows counted in seconds around", () => {
    // ls -l: sshfs 2 s, adapter 0.5 s: 1.5× sshfs's rate is 1.33 s, 60 % of the adapter's is 0.83 s; the laxer wins.
    assert.ok(Math.abs(requiredValue(row("lsLong"), { sshfs: 2, adapter: 0.5, budgetMiB: 256 })! - 4 / 3) < 1e-9);
  });
  it("judges peak RSS against the budget only", () => {
    assert.equal(requiredValue(row("peakRss"), { sshfs: 10, budgetMiB: 256 }), 356);
  });
});

describe("table", () => {
  it("formats numbers to about three significant digits", () => {
    assert.deepEqual([12345.6, 123.4, 12.34, 1.234].map(formatNumber), ["12,346", "123", "12.3", "1.23"]);
  });
  it("shows ratios with > 1 meaning natsfs is better, and the bus fraction on sequential rows", () => {
    const table = renderTable(
      {
        columns: [{ key: "sshfs", label: "sshfs" }, { key: "natsfs", label: "natsfs" }],
        values: { sshfs: { seqRead: 200, lsLong: 2 }, natsfs: { seqRead: 100, lsLong: 4 } },
        bus: { read: { direction: "read", messageBytes: 131072, inFlight: 8, mbPerS: 400 } },
        budgetMiB: 256,
      },
      [row("seqRead"), row("lsLong")],
    );
    const [seqRead, lsLong] = table.split("\n").slice(2);
    assert.match(seqRead!, /\| +0\.50× \| +400 \| +25 % \|/);
    assert.match(seqRead!, /≥ 280 \| no/);
    assert.match(lsLong!, /\| +0\.50× \|/);
  });
});

describe("bus message size", () => {
  const metrics = (written: number, writes: number) =>
    [
      "# HELP natsfs_server_written_bytes_total x",
      `natsfs_server_written_bytes_total{export="data"} ${written}`,
      `natsfs_server_ops_total{export="data",op="write",identity="tester",result="ok"} ${writes}`,
      `natsfs_server_ops_total{export="data",op="getattr",identity="tester",result="ok"} 99`,
      `natsfs_server_ops_total{export="data",op="readdir",identity="tester",result="ok"} 7`,
    ].join("\n");
  it("sums samples by name and labels", () => {
    assert.equal(metricSum(metrics(10, 2), "natsfs_server_ops_total"), 108);
    assert.equal(metricSum(metrics(10, 2), "natsfs_server_ops_total", (l) => l.op === "write"), 2);
  });
  it("is the bytes per data request between two snapshots", () => {
    const before = dataPathCounters(metrics(1000, 1), "write");
    const after = dataPathCounters(metrics(1000 + 8 * 131072, 9), "write");
    assert.equal(meanMessageBytes(before, after), 131072);
    assert.equal(dataPathCounters(metrics(0, 0), "read").requests, 0, "readdir is not a data read");
    assert.equal(meanMessageBytes(before, before), undefined);
  });
});

describe("profile summary", () => {
  it("names packages, project files and V8 categories", () => {
    assert.equal(placeOf("file:///work/main/node_modules/nats/lib/nats-base-client/protocol.js", "f"), "nats");
    assert.equal(placeOf("file:///work/main/node_modules/@msgpack/msgpack/dist/x.js", "f"), "@msgpack/msgpack");
    assert.equal(placeOf("file:///work/main/dist/client/vfs.js", "f"), "dist/client/vfs.js");
    assert.equal(placeOf("node:internal/tls/wrap", "f"), "node:internal/tls/wrap");
    assert.equal(placeOf("", "(garbage collector)"), "(garbage collector)");
  });
  it("shares busy time out by place and function, idle left out", () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
    const summary = summarizeProfile({
      startTime: 0,
      endTime: 2e6,
      nodes: [
        { id: 1, callFrame: frame("(idle)", ""), hitCount: 50 },
        { id: 2, callFrame: frame("encode", "file:///x/node_modules/@msgpack/msgpack/a.js"), hitCount: 30 },
        { id: 3, callFrame: frame("read", "file:///x/dist/client/vfs.js"), hitCount: 20 },
      ],
    });
    assert.equal(summary.busySeconds, 1);
    assert.equal(summary.totalSeconds, 2);
    assert.deepEqual(summary.byPlace, [{ name: "@msgpack/msgpack", share: 0.6 }, { name: "dist/client/vfs.js", share: 0.4 }]);
    assert.equal(summary.byFunction[1]!.name, "read dist/client/vfs.js:1");
  });
});

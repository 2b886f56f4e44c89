// The raw bus ceiling: TLS request/reply throughput between two nats.js processes on the natsfs stack's
// own nats-server (rendered config, mutual TLS, permissions), with messages of the size the natsfs data
// path itself sent in this run, read from the natsfs server's metrics.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { stopProcess } from "../../helpers/mount.js";
import { start, waitFor } from "../../helpers/processes.js";
import { requestSubject } from "../../../src/protocol/index.js";
import { mustRun, recordPid } from "./system.js";
import type { PeerArgs } from "./bus-peer.js";
import { NATSFS_IDENTITIES, type NatsfsTarget } from "./targets.js";

const PEER = join(dirname(fileURLToPath(import.meta.url)), "bus-peer.ts");
/** Size of the small side of a request/reply (a read request, a write's answer). */
const SMALL_BYTES = 64;
/** An instance token no natsfs server uses: only the benchmark's responder listens on these subjects. */
const CEILING_INSTANCE = "benchceiling";

/** Sum of the samples of one metric in Prometheus text whose labels satisfy `where`. */
export function metricSum(text: string, name: string, where: (labels: Record<string, string>) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (where(labels)) sum += Number(match[3]);
  }
  return sum;
}

export type Direction = "write" | "read";

/** Server-side counters of one direction of the data path. */
export interface DataPathCounters {
  bytes: number;
  requests: number;
}

/** Data ops of a direction by their op label: "write", "read" and any variant of them, never readdir/readlink. */
const isDataOp = (direction: Direction) => (op: string) => (direction === "write" ? /^write/.test(op) : /^read(?!dir|link)/.test(op));

export function dataPathCounters(metricsText: string, direction: Direction): DataPathCounters {
  return {
    bytes: metricSum(metricsText, `natsfs_server_${direction === "write" ? "written" : "read"}_bytes_total`),
    requests: metricSum(metricsText, "natsfs_server_ops_total", (labels) => isDataOp(direction)(labels.op ?? "")),
  };
}

/** Mean bytes per data request between two snapshots; undefined when nothing moved. */
export function meanMessageBytes(before: DataPathCounters, after: DataPathCounters): number | undefined {
  const requests = after.requests - before.requests;
  const bytes = after.bytes - before.bytes;
  return requests > 0 && bytes > 0 ? Math.round(bytes / requests) : undefined;
}

export async function readCounters(target: NatsfsTarget, direction: Direction): Promise<DataPathCounters | undefined> {
  try {
    const response = await fetch(target.serverMetricsUrl, { signal: AbortSignal.timeout(5_000) });
    return dataPathCounters(await response.text(), direction);
  } catch {
    return undefined;
  }
}

export interface BusCeiling {
  direction: Direction;
  messageBytes: number;
  inFlight: number;
  mbPerS: number;
}

const RequesterOutput = z.object({ requests: z.number(), seconds: z.number() });

/**
 * MB/s the bus moves in one direction with `messageBytes` messages and `inFlight` requests outstanding:
 * "write" sends them as requests and gets small answers, "read" sends small requests and gets them as replies.
 */
async function busRun(target: NatsfsTarget, direction: Direction, messageBytes: number, seconds: number, inFlight: number): Promise<BusCeiling> {
  const common = {
    url: target.natsUrl,
    pki: target.pki,
    subject: requestSubject(target.exportName, NATSFS_IDENTITIES.client, direction, CEILING_INSTANCE),
    requestBytes: direction === "write" ? messageBytes : SMALL_BYTES,
    replyBytes: direction === "read" ? messageBytes : SMALL_BYTES,
    seconds,
    inFlight,
  };
  const peerArgs = (role: PeerArgs["role"], identity: string): string[] => ["--import", "tsx", PEER, JSON.stringify({ ...common, role, identity } satisfies PeerArgs)];
  const responder = start(process.execPath, peerArgs("respond", NATSFS_IDENTITIES.server));
  recordPid(responder.pid);
  try {
    await waitFor("bus responder", () => responder.output().includes("ready") || responder.child.exitCode !== null, 20_000);
    if (responder.child.exitCode !== null) throw new Error(`bus responder exited:\n${responder.output()}`);
    const { stdout } = await mustRun(process.execPath, peerArgs("request", NATSFS_IDENTITIES.client), (seconds + 60) * 1000);
    const result = RequesterOutput.parse(JSON.parse(stdout.trim().split("\n").at(-1) ?? ""));
    return { direction, messageBytes, inFlight, mbPerS: (result.requests * messageBytes) / 1e6 / result.seconds };
  } finally {
    await stopProcess(responder);
  }
}

/** The best of one run per in-flight count: what the bus moves at most with these messages. */
export async function busCeiling(target: NatsfsTarget, direction: Direction, messageBytes: number, seconds: number, inFlightCounts: number[]): Promise<BusCeiling> {
  let best: BusCeiling | undefined;
  for (const inFlight of inFlightCounts) {
    const run = await busRun(target, direction, messageBytes, seconds, inFlight);
    if (!best || run.mbPerS > best.mbPerS) best = run;
  }
  return best!;
}

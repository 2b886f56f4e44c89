import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import type { NodeStatus } from "../metrics/index.js";
import { UsageError, untilSignal } from "./common.js";

const FETCH_TIMEOUT_MS = 5000;
const DEFAULT_INTERVAL_SECONDS = 2;

/** The /status URL for a metrics endpoint given as a base URL, host:port, or the /status URL itself. */
export function statusUrl(input: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `http://${input}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`"${input}" is not a URL; give the metrics endpoint, e.g. http://127.0.0.1:9100`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`"${input}" is not an http(s) URL; give the metrics endpoint, e.g. http://127.0.0.1:9100`);
  }
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = path.endsWith("/status") ? path : `${path}/status`;
  return url.toString();
}

export function parseInterval(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`invalid interval "${value}" (seconds, > 0)`);
  return seconds;
}

function isNodeStatus(body: unknown): body is NodeStatus {
  if (typeof body !== "object" || body === null) return false;
  const role = (body as { role?: unknown }).role;
  return role === "client" || role === "server";
}

/** Reads one /status document; every failure becomes a one-line message. */
export async function fetchStatus(url: string): Promise<NodeStatus> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(`cannot reach ${url} (${why}); is the process running with --metrics-port?`);
  }
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${url} did not answer JSON; is this a natsfs metrics endpoint?`);
  }
  if (!isNodeStatus(body)) throw new Error(`${url} did not answer a natsfs status document`);
  return body;
}

const shown = (value: string | number | undefined): string => (value === undefined || value === "" ? "-" : String(value));

/** "3 (timeout 2, no_responders 1)" from per-reason counts; zero reasons are left out. */
export function countsByKey(counts: Record<string, number> | undefined): string {
  if (counts === undefined) return "-";
  const entries = Object.entries(counts);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const nonZero = entries.filter(([, count]) => count > 0).map(([key, count]) => `${key} ${count}`);
  return nonZero.length === 0 ? String(total) : `${total} (${nonZero.join(", ")})`;
}

function exportsCell(status: NodeStatus): string {
  if (!Array.isArray(status.exports) || status.exports.length === 0) return "-";
  return status.exports
    .map((entry) => {
      if (entry.reachable === true) return `${entry.name} (reachable)`;
      if (entry.reachable === false) return `${entry.name} (UNREACHABLE)`;
      if (entry.openHandles !== undefined) return `${entry.name} (${entry.openHandles} open)`;
      return entry.name;
    })
    .join(", ");
}

function opsCell(status: NodeStatus): string {
  const parts = [`${shown(status.ops?.failed)} failed`];
  if (status.role === "client") parts.push(`${shown(status.opsInFlight)} in flight`);
  return `${shown(status.ops?.total)} (${parts.join(", ")})`;
}

/** A compact two-column table of one /status document. */
export function renderStatus(status: NodeStatus): string {
  const rows: [string, string][] = [
    ["role", `${status.role}  identity ${shown(status.identity)}  version ${shown(status.version)}`],
    ["exports", exportsCell(status)],
    ["instance", shown(status.instance)],
    ["epoch", status.role === "server" ? shown(status.epoch) : "-"],
    ["NATS server", shown(status.natsServer)],
    ["connected", status.connected ? "yes" : "NO"],
    ["open handles", shown(status.openHandles)],
    ["ops", opsCell(status)],
  ];
  if (status.role === "client") {
    rows.push(
      ["failovers", countsByKey(status.failovers)],
      ["remaps", countsByKey(status.remaps)],
      ["retries", shown(status.retries)],
      ["reconnects", shown(status.reconnects)],
    );
  } else {
    rows.push(
      ["denials", countsByKey(status.denials)],
      ["dup. hits", shown(status.duplicateRequestHits)],
      ["malformed", shown(status.malformedRequests)],
      ["damaged", shown(status.damagedRequests)],
    );
  }
  rows.push(["last error", status.lastError ? `${status.lastError.message} (at ${status.lastError.at})` : "-"]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return `${rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join("\n")}\n`;
}

const CLEAR_SCREEN = "\x1b[2J\x1b[H";

async function watch(url: string, intervalSeconds: number): Promise<void> {
  let stopped = false;
  const stop = new AbortController();
  void untilSignal().then(() => {
    stopped = true;
    stop.abort();
  });
  while (!stopped) {
    // While watching, an unreachable endpoint is shown and retried: it may be restarting.
    const screen = await fetchStatus(url).then(renderStatus, (err: Error) => `${err.message}\n`);
    const header = `${url}  every ${intervalSeconds}s  ${new Date().toISOString()}  (Ctrl-C to stop)\n\n`;
    process.stdout.write((process.stdout.isTTY ? CLEAR_SCREEN : "\n") + header + screen);
    await sleep(intervalSeconds * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
  }
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("show the state of a running client or server from its metrics endpoint's /status")
    .argument("<url>", "metrics endpoint, e.g. http://127.0.0.1:9100 (or .../status)")
    .option("--watch", "redraw until Ctrl-C")
    .option("--interval <seconds>", "seconds between redraws with --watch", parseInterval, DEFAULT_INTERVAL_SECONDS)
    .action(async (input: string, options: { watch?: boolean; interval: number }) => {
      const url = statusUrl(input);
      if (options.watch) {
        await watch(url, options.interval);
        return;
      }
      process.stdout.write(renderStatus(await fetchStatus(url)));
    });
}

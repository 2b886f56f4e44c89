import { createRequire } from "node:module";
import type { Command } from "commander";
import type { Registry } from "prom-client";
import { startMetricsServer, type MetricsServer, type Readiness } from "../metrics/index.js";

export const VERSION: string = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

/** A mistake in how a command was called: exits 2 with a one-line message. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid port "${value}"`);
  return port;
}

export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`invalid number of seconds "${value}"`);
  return seconds;
}

export function parseCount(value: string): number {
  const count = Number(value);
  if (!Number.isSafeInteger(count) || count < 1) throw new UsageError(`invalid count "${value}": expected a whole number of at least 1`);
  return count;
}

export const MiB = 1024 * 1024;

/** A size in MiB (kept in MiB, so a flag's default shows as the user writes it). */
export function parseMebibytes(value: string): number {
  const mib = Number(value);
  if (!Number.isFinite(mib) || mib <= 0) throw new UsageError(`invalid size "${value}": expected MiB, more than 0`);
  return mib;
}

/** Options shared by every command that talks to the bus. */
export function addBusOptions(command: Command): Command {
  return command
    .requiredOption("--nats <urls>", "comma-separated nats-server URLs, e.g. tls://127.0.0.1:4222")
    .option("--pki <dir>", "PKI directory holding ca.pem and <identity>.pem/.key (see `natsfs pki`)")
    .option("--identity <name>", "identity (certificate common name) to act as")
    .option("--insecure", "plain NATS without TLS: local experiments only");
}

/** Options of the metrics/health HTTP endpoint. */
export function addMetricsOptions(command: Command): Command {
  return command
    .option("--metrics-port <n>", "serve /metrics, /healthz, /readyz, /status on this port", parsePort)
    .option("--metrics-host <host>", "address for the metrics endpoint", "127.0.0.1");
}

/** Starts /metrics, /healthz, /readyz and /status when --metrics-port was given. */
export async function startMetricsEndpoint(
  flags: { metricsPort?: number; metricsHost: string },
  registry: Registry,
  ready: () => Promise<Readiness>,
  status: () => unknown,
): Promise<MetricsServer | undefined> {
  if (flags.metricsPort === undefined) return undefined;
  return startMetricsServer({ host: flags.metricsHost, port: flags.metricsPort, registry, ready, status });
}

/** Resolves when the process is asked to stop (SIGINT or SIGTERM). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => resolve(signal);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
}

import { stat } from "node:fs/promises";
import type { NatsConnection } from "nats";
import { pino, type Logger } from "pino";
import { DEFAULT_SERVER_OPTIONS, type AccessPolicy, type ExportConfig, type ServerOptions } from "./config.js";
import { FsService, type ServerStatus } from "./service.js";
import { NULL_SERVER_OBSERVER, type ServerObserver } from "./observer.js";
import { sweepLeftovers } from "./leftovers.js";

export {
  DEFAULT_ANON_ID,
  DEFAULT_SERVER_OPTIONS,
  ExportSpecError,
  openPolicy,
  parseExportSpec,
  parseExportSpecs,
  type AccessPolicy,
  type ExportConfig,
  type Grant,
  type ServerOptions,
  type Squash,
} from "./config.js";
export { NULL_SERVER_OBSERVER, type DenialReason, type ServerObserver } from "./observer.js";
export type { ExportStatus, ServerStatus } from "./service.js";

export interface StartServerParams {
  nc: NatsConnection;
  exports: readonly ExportConfig[];
  policy: AccessPolicy;
  observer?: ServerObserver;
  options?: Partial<ServerOptions>;
  logger?: Logger;
}

export interface RunningServer {
  instance: string;
  epoch: string;
  /** Drains subscriptions, waits for requests in flight and closes every handle; the connection stays open. */
  stop(): Promise<void>;
  status(): ServerStatus;
}

/** A logger writing JSON lines to stderr, level from NATSFS_LOG_LEVEL (default info). */
export function serverLogger(): Logger {
  return pino({ name: "natsfs-server", level: process.env.NATSFS_LOG_LEVEL ?? "info" }, pino.destination(2));
}

async function checkExportRoot(config: ExportConfig): Promise<void> {
  const stats = await stat(config.path).catch((err: Error) => {
    throw new Error(`export ${config.name}: cannot use ${config.path}: ${err.message}`);
  });
  if (!stats.isDirectory()) throw new Error(`export ${config.name}: ${config.path} is not a directory`);
}

/** Serves `exports` on `nc` until stop(). */
export async function startServer(params: StartServerParams): Promise<RunningServer> {
  if (params.exports.length === 0) throw new Error("no exports to serve");
  await Promise.all(params.exports.map(checkExportRoot));
  // Clients send modes with their own umask already applied; the server's must not mask them again.
  process.umask(0);
  const logger = params.logger ?? serverLogger();
  const options = { ...DEFAULT_SERVER_OPTIONS, ...params.options };
  const service = new FsService({
    nc: params.nc,
    exports: params.exports,
    policy: params.policy,
    observer: params.observer ?? NULL_SERVER_OBSERVER,
    options,
    logger,
  });
  await service.start();
  // In the background: a large export must not delay serving.
  const sweeps = Promise.all(
    params.exports.map((config) =>
      sweepLeftovers(config.path, options.leftoverGraceMs, logger.child({ export: config.name })).then(
        (result) => logger.info({ export: config.name, ...result }, "leftover sweep done"),
        (err: unknown) => logger.warn({ export: config.name, err: (err as Error).message }, "leftover sweep failed"),
      ),
    ),
  );
  return {
    instance: service.instance,
    epoch: service.epoch,
    stop: async () => {
      await service.stop();
      await sweeps;
    },
    status: () => service.status(),
  };
}

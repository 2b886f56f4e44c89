import Fastify from "fastify";
import type { Registry } from "prom-client";

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port; the chosen one is in the returned url. */
  port: number;
  registry: Registry;
  /** Asked on every GET /readyz; a throw counts as not ready, with the error as the reason. */
  ready: () => Promise<Readiness>;
  /** Body of GET /status. */
  status: () => unknown;
}

export interface MetricsServer {
  /** Base URL, e.g. http://127.0.0.1:9100 */
  url: string;
  close(): Promise<void>;
}

/** URL host part: IPv6 literals need brackets. */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** Serves /metrics, /healthz, /readyz and /status for one role's registry. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const app = Fastify({ logger: false });

  app.get("/metrics", async (_request, reply) => {
    const body = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(body);
  });

  // Liveness only: the event loop answers. Dependencies belong in /readyz.
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    let readiness: Readiness;
    try {
      readiness = await options.ready();
    } catch (err) {
      readiness = { ready: false, reason: (err as Error).message };
    }
    if (readiness.ready) return reply.code(200).send({ status: "ready" });
    return reply.code(503).send({ status: "not ready", reason: readiness.reason ?? "unknown" });
  });

  app.get("/status", async () => options.status());

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  if (address === null || typeof address === "string") {
    await app.close();
    throw new Error(`metrics endpoint on ${options.host}:${options.port} has no TCP address`);
  }
  return {
    url: `http://${urlHost(options.host)}:${address.port}`,
    close: () => app.close(),
  };
}

import { mkdtempSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { start, waitFor, type Started } from "./processes.js";

export interface NatsServer extends Started {
  port: number;
  url: string;
  /** Restarts on the same port with the same config (after stop()). */
  restart(): Promise<NatsServer>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts a real nats-server on 127.0.0.1. `config` is extra configuration text (TLS, users...);
 * the listen address and port are always set here.
 */
export async function startNatsServer(options: { config?: string; port?: number; scheme?: "nats" | "tls" } = {}): Promise<NatsServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "natsfs-nats-"));
  const configPath = join(dir, "nats.conf");
  writeFileSync(configPath, `listen: 127.0.0.1:${port}\n${options.config ?? ""}\n`);
  const launch = async (): Promise<NatsServer> => {
    const proc = start("nats-server", ["-c", configPath]);
    await waitFor(`nats-server on port ${port}`, () => portOpen(port), 10_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${proc.output()}`);
    });
    return { ...proc, port, url: `${options.scheme ?? "nats"}://127.0.0.1:${port}`, restart: launch };
  };
  return launch();
}

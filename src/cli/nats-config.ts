import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { isToken } from "../protocol/index.js";
import { NATS_CONFIG_DEFAULTS, certPath, keyPath, loadPolicy, renderNatsConfig } from "../security/index.js";
import { UsageError, parsePort } from "./common.js";

export function registerNatsConfig(program: Command): void {
  program
    .command("nats-config")
    .description("print the nats-server configuration (mutual TLS, users, permissions) for a policy file")
    .requiredOption("--policy <file>", "policy file (YAML or JSON)")
    .requiredOption("--pki <dir>", "PKI directory holding ca.pem and the nats-server's certificate")
    .option("--port <n>", "client port (nats-server's default: 4222)", parsePort)
    .option("--cert-name <name>", "name the nats-server's certificate was issued under", NATS_CONFIG_DEFAULTS.certName)
    .option("--monitor-port <n>", "serve nats-server monitoring on 127.0.0.1 at this port", parsePort)
    .action((opts: { policy: string; pki: string; port?: number; certName: string; monitorPort?: number }) => {
      if (!isToken(opts.certName)) throw new UsageError(`--cert-name "${opts.certName}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
      const dir = resolve(opts.pki);
      for (const file of [certPath(dir, "ca"), certPath(dir, opts.certName), keyPath(dir, opts.certName)]) {
        if (!existsSync(file)) {
          throw new UsageError(`${file} does not exist: run "natsfs pki issue --dir ${dir} --name ${opts.certName} --host 127.0.0.1 --host localhost" (and pki init first)`);
        }
      }
      const policy = loadPolicy(opts.policy);
      const options = {
        certName: opts.certName,
        ...(opts.port === undefined ? {} : { port: opts.port }),
        ...(opts.monitorPort === undefined ? {} : { monitorPort: opts.monitorPort }),
      };
      process.stdout.write(renderNatsConfig(policy, dir, options));
    });
}

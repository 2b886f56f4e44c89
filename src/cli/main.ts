#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerDemo } from "./demo.js";
import { registerMount } from "./mount.js";
import { registerNatsConfig } from "./nats-config.js";
import { registerPki } from "./pki.js";
import { registerServer } from "./server.js";
import { registerStatus } from "./status.js";
import { UsageError, VERSION } from "./common.js";

// libuv's thread pool (4 threads by default) runs every disk call and FFI call of a server and a
// mount: with 4, one client's large reads can keep another's getattr waiting. It is sized when first
// used, which is after this line (nothing above does disk or DNS work asynchronously).
process.env.UV_THREADPOOL_SIZE ??= "16";

const program = new Command("natsfs")
  .description("A grid file system: directories exported over a TLS NATS bus, mounted with FUSE")
  .version(VERSION)
  .exitOverride()
  .showHelpAfterError("(run with --help for usage)");

registerPki(program);
registerNatsConfig(program);
registerServer(program);
registerMount(program);
registerStatus(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
  // A command is done when its action returns; a FUSE thread or a stray timer must not keep it alive.
  process.exit(0);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version are successful exits; every other parse failure is a usage error.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof UsageError) {
    process.stderr.write(`natsfs: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`natsfs: ${(err as Error).message}\n`);
  process.exit(1);
}

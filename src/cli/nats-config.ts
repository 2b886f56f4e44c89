import type { Command } from "commander";

export function registerNatsConfig(program: Command): void {
  program.command("nats-config").description("not built yet").action(() => {
    throw new Error("nats-config: not built yet");
  });
}

import type { Command } from "commander";

export function registerServer(program: Command): void {
  program.command("server").description("not built yet").action(() => {
    throw new Error("server: not built yet");
  });
}

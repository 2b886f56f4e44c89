import type { Command } from "commander";

export function registerPki(program: Command): void {
  program.command("pki").description("not built yet").action(() => {
    throw new Error("pki: not built yet");
  });
}

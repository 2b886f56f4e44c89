import type { Command } from "commander";

export function registerMount(program: Command): void {
  program.command("mount").description("not built yet").action(() => {
    throw new Error("mount: not built yet");
  });
}

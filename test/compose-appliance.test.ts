import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const SCRIPT = fileURLToPath(new URL("../scripts/compose-test.sh", import.meta.url));
/**
 * What the whole appliance test may take, cold (debootstrap, image builds) included; past it the
 * script is stopped with SIGTERM and given TEARDOWN_MS to remove the stack. Both stay inside the
 * `compose` group's cap in scripts/run-tests.sh.
 */
const RUN_MS = Number(process.env.NATSFS_COMPOSE_TEST_MS ?? 760_000);
const TEARDOWN_MS = 110_000;

const runnable = process.getuid?.() === 0 && existsSync("/dev/fuse");

test("the compose appliance end to end (scripts/compose-test.sh)", { skip: runnable ? false : "needs root and /dev/fuse", timeout: RUN_MS + TEARDOWN_MS + 10_000 }, async () => {
  const child = spawn("bash", [SCRIPT], { stdio: ["ignore", "inherit", "inherit"] });
  const deadline = setTimeout(() => {
    process.stderr.write(`compose-appliance: no result after ${RUN_MS} ms; stopping the script (it tears down)\n`);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), TEARDOWN_MS).unref();
  }, RUN_MS);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("exit", (c, s) => resolve([c, s])));
  clearTimeout(deadline);
  assert.equal(code, 0, `scripts/compose-test.sh exited with ${code ?? signal} (its log above says which step failed)`);
});

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const RULE_TESTS = fileURLToPath(new URL("../deploy/prometheus/rules.test.yml", import.meta.url));

// The alert that must not fire while any server instance serves an export (scaled servers), and must
// fire when none does: promtool's unit tests replay the scenarios against deploy/prometheus/rules.yml.
test("promtool test rules: NatsfsServerDown fires only when no instance serves the export", () => {
  const output = execFileSync("promtool", ["test", "rules", RULE_TESTS], { encoding: "utf8" });
  assert.match(output, /SUCCESS/);
});

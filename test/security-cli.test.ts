import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

function natsfs(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ["--import", "tsx", MAIN, ...args], { encoding: "utf8", timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("natsfs pki and nats-config commands", () => {
  let root: string;
  let pki: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "natsfs-security-cli-"));
    pki = join(root, "pki");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("creates a CA and certificates, lists them, and refuses to overwrite", () => {
    assert.equal(natsfs("pki", "init", "--dir", pki).status, 0);
    const issued = natsfs("pki", "issue", "--dir", pki, "--name", "nats", "--host", "127.0.0.1", "--host", "localhost");
    assert.equal(issued.status, 0, issued.stderr);
    assert.match(issued.stdout, /DNS:nats, IP Address:127\.0\.0\.1, DNS:localhost/);
    assert.equal(natsfs("pki", "issue", "--dir", pki, "--name", "alice", "--days", "2").status, 0);
    assert.equal(statSync(join(pki, "alice.key")).mode & 0o777, 0o600);

    const listed = natsfs("pki", "list", "--dir", pki);
    assert.equal(listed.status, 0);
    assert.deepEqual(listed.stdout.trim().split("\n").map((line) => line.split(/\s+/)[0]), ["NAME", "ca", "alice", "nats"]);

    const again = natsfs("pki", "issue", "--dir", pki, "--name", "alice");
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^natsfs: .*alice\.pem.*already exist.*pass --force/);
    assert.equal(natsfs("pki", "issue", "--dir", pki, "--name", "alice", "--force").status, 0);
  });

  it("exits 2 with a one-line message on usage errors", () => {
    const badName = natsfs("pki", "issue", "--dir", pki, "--name", "a.b");
    assert.equal(badName.status, 2);
    assert.equal(badName.stderr.trim().split("\n").length, 1);
    assert.equal(natsfs("pki", "issue", "--dir", pki, "--name", "x", "--days", "0").status, 2);
    assert.equal(natsfs("pki", "issue", "--dir", pki).status, 2);
    const noServerCert = natsfs("nats-config", "--policy", join(root, "p.yaml"), "--pki", pki, "--cert-name", "missing");
    assert.equal(noServerCert.status, 2);
    assert.match(noServerCert.stderr, /missing\.pem does not exist: run "natsfs pki issue/);
  });

  it("prints a nats-server config that nats-server accepts, with monitoring when asked", () => {
    const policy = join(root, "policy.yaml");
    writeFileSync(policy, "exports:\n  home: { path: /srv/home }\nidentities:\n  alice: { grants: { home: rw } }\nservers: [fileserver]\n");
    const rendered = natsfs("nats-config", "--policy", policy, "--pki", pki, "--port", "4999", "--monitor-port", "8999");
    assert.equal(rendered.status, 0, rendered.stderr);
    assert.match(rendered.stdout, /^port: 4999$/m);
    assert.match(rendered.stdout, /^http: "127\.0\.0\.1:8999"$/m);
    const conf = join(root, "nats.conf");
    writeFileSync(conf, rendered.stdout);
    const check = spawnSync("nats-server", ["-t", "-c", conf], { encoding: "utf8", timeout: 10_000 });
    assert.equal(check.status, 0, check.stderr + check.stdout);

    writeFileSync(policy, "exports:\n  home: { path: /srv/home }\nidentities:\n  alice: { grants: { home: rwx } }\n");
    const invalid = natsfs("nats-config", "--policy", policy, "--pki", pki);
    assert.equal(invalid.status, 1);
    assert.equal(invalid.stderr, `natsfs: ${policy}:4: identities.alice.grants.home: expected "rw" | "ro"\n`);
  });
});

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PolicyError, loadPolicy, parsePolicy } from "../src/security/index.js";

const DESIGN_EXAMPLE = `exports:
  home:   { path: /srv/home }
  public: { path: /srv/public, readOnly: true, squash: all, anonUid: 65534, anonGid: 65534 }
identities:                 # certificate CN = identity name
  alice: { grants: { home: rw, public: ro } }
  bob:   { grants: { public: ro } }
servers: [fileserver]       # identities allowed to serve exports
`;

function problems(text: string): string[] {
  try {
    parsePolicy(text, "policy.yaml");
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.problems;
  }
  assert.fail("the policy was accepted");
}

describe("policy file", () => {
  it("loads the design's example with defaults filled in", () => {
    const policy = parsePolicy(DESIGN_EXAMPLE, "policy.yaml");
    assert.deepEqual(policy.exports, [
      { name: "home", path: "/srv/home", readOnly: false, squash: "none", anonUid: 65534, anonGid: 65534, devices: false },
      { name: "public", path: "/srv/public", readOnly: true, squash: "all", anonUid: 65534, anonGid: 65534, devices: false },
    ]);
    assert.deepEqual(policy.identities, [
      { name: "alice", grants: { home: "rw", public: "ro" } },
      { name: "bob", grants: { public: "ro" } },
    ]);
    assert.deepEqual(policy.servers, ["fileserver"]);
  });

  it("answers grants, downgrading rw on a read-only export", () => {
    const { policy } = parsePolicy(
      "exports: { home: { path: /h }, public: { path: /p, readOnly: true } }\nidentities: { alice: { grants: { home: rw, public: rw } } }\n",
      "p.yaml",
    );
    assert.equal(policy.grant("alice", "home"), "rw");
    assert.equal(policy.grant("alice", "public"), "ro");
    assert.equal(policy.grant("alice", "other"), undefined);
    assert.equal(policy.grant("bob", "home"), undefined);
  });

  it("reads JSON as well, from a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "natsfs-policy-"));
    try {
      const file = join(dir, "policy.json");
      writeFileSync(file, JSON.stringify({ exports: { home: { path: "/srv/home" } }, identities: { alice: { grants: { home: "ro" } } }, servers: ["fs"] }));
      const policy = loadPolicy(file);
      assert.equal(policy.policy.grant("alice", "home"), "ro");
      assert.equal(policy.file, file);
      assert.throws(() => loadPolicy(join(dir, "missing.yaml")), /missing\.yaml: cannot read the policy file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the file, line and field of a bad grant", () => {
    const text = DESIGN_EXAMPLE.replace("bob:   { grants: { public: ro } }", "bob:\n    grants:\n      public: rwx");
    assert.deepEqual(problems(text), ['policy.yaml:8: identities.bob.grants.public: expected "rw" | "ro"']);
  });

  it("reports every bad field of an export on its line", () => {
    const text = "exports:\n  home:\n    path: srv/home\n    squash: some\n    anonUid: -1\n    readonly: true\n";
    assert.deepEqual(problems(text), [
      "policy.yaml:3: exports.home.path: must be an absolute path",
      'policy.yaml:4: exports.home.squash: expected "none" | "root" | "all"',
      "policy.yaml:5: exports.home.anonUid: Too small: expected number to be >=0",
      'policy.yaml:6: exports.home: Unrecognized key: "readonly"',
    ]);
  });

  it("rejects names that are not subject tokens and grants of unknown exports", () => {
    assert.deepEqual(problems("exports: { home: { path: /h } }\nidentities:\n  bad.name: {}\nservers: [fs, 'x y']\n"), [
      "policy.yaml:3: identities.bad.name: invalid name: must be 1-64 characters of A-Z a-z 0-9 _ -",
      "policy.yaml:4: servers.1: must be 1-64 characters of A-Z a-z 0-9 _ -",
    ]);
    assert.deepEqual(problems("exports: { home: { path: /h } }\nidentities:\n  alice:\n    grants: { home: rw, nope: ro }\n"), [
      'policy.yaml:4: identities.alice.grants.nope: no export named "nope"',
    ]);
  });

  it("reports syntax errors, duplicate keys and a missing exports section with a line", () => {
    assert.match(problems("exports: [1\n")[0]!, /^policy\.yaml:2: .*end with a \]/);
    assert.deepEqual(problems("exports:\n  a: {path: /a}\n  a: {path: /b}\n"), ["policy.yaml:3: Map keys must be unique"]);
    assert.deepEqual(problems("identities: {}\n"), ["policy.yaml:1: exports: Invalid input: expected record, received undefined"]);
  });
});

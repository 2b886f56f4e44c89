import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import forge from "node-forge";
import { PkiError, certPath, initCa, issue, keyPath, list } from "../src/security/index.js";

describe("pki", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "natsfs-pki-"));
    initCa(dir);
    issue(dir, "nats", ["127.0.0.1", "localhost"]);
    issue(dir, "alice");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes private keys readable by the owner only", () => {
    for (const name of ["ca", "nats", "alice"]) {
      assert.equal(statSync(keyPath(dir, name)).mode & 0o777, 0o600, `${name}.key`);
    }
  });

  it("signs certificates with SHA-256 by the CA, for both client and server use", () => {
    const ca = new X509Certificate(readFileSync(certPath(dir, "ca")));
    assert.equal(ca.ca, true);
    for (const name of ["nats", "alice"]) {
      const pem = readFileSync(certPath(dir, name), "utf8");
      const cert = new X509Certificate(pem);
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${name} is issued by the CA`);
      assert.equal(cert.subject, `CN=${name}`);
      assert.equal(cert.ca, false);
      assert.deepEqual(cert.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], "serverAuth and clientAuth");
      assert.equal(forge.pki.oids[forge.pki.certificateFromPem(pem).siginfo.algorithmOid], "sha256WithRSAEncryption");
    }
  });

  it("puts the name and every host in the subject alternative names", () => {
    const nats = new X509Certificate(readFileSync(certPath(dir, "nats")));
    assert.equal(nats.subjectAltName, "DNS:nats, IP Address:127.0.0.1, DNS:localhost");
    assert.equal(nats.checkIP("127.0.0.1"), "127.0.0.1");
    assert.equal(nats.checkHost("localhost"), "localhost");
  });

  it("gives leaf certificates a year and the CA ten years by default", () => {
    const [ca, , alice] = list(dir);
    const years = (d: Date) => (d.getTime() - Date.now()) / (365 * 24 * 3600 * 1000);
    assert.ok(Math.abs(years(ca!.notAfter) - 10) < 0.02);
    assert.ok(Math.abs(years(alice!.notAfter) - 1) < 0.01);
  });

  it("lists names, subjects, expiry and SHA-256 fingerprints, the CA first", () => {
    const certs = list(dir);
    assert.deepEqual(certs.map((c) => c.name), ["ca", "alice", "nats"]);
    const alice = certs[1]!;
    assert.equal(alice.subject, "CN=alice");
    assert.equal(alice.fingerprint256, new X509Certificate(readFileSync(certPath(dir, "alice"))).fingerprint256);
    assert.match(alice.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it("refuses to overwrite a CA or certificate without force", () => {
    const before = readFileSync(certPath(dir, "alice"), "utf8");
    assert.throws(() => initCa(dir), (err: Error) => err instanceof PkiError && /already exist.*--force/.test(err.message));
    assert.throws(() => issue(dir, "alice"), (err: Error) => err instanceof PkiError && /alice\.pem.*already exist.*--force/.test(err.message));
    assert.equal(readFileSync(certPath(dir, "alice"), "utf8"), before);
    issue(dir, "alice", [], { force: true });
    assert.notEqual(readFileSync(certPath(dir, "alice"), "utf8"), before);
    assert.equal(statSync(keyPath(dir, "alice")).mode & 0o777, 0o600);
  });

  it("accepts explicit validity so tests can make expired certificates", () => {
    const notBefore = new Date(Date.now() - 3 * 86_400_000);
    const notAfter = new Date(Date.now() - 86_400_000);
    const expired = issue(dir, "expired", [], { notBefore, notAfter });
    assert.equal(expired.notAfter.getTime(), Math.floor(notAfter.getTime() / 1000) * 1000);
    assert.equal(issue(dir, "short", [], { days: 2 }).notAfter > new Date(Date.now() + 86_400_000), true);
  });

  it("rejects names that are not subject tokens, the CA's own name, and a missing CA", () => {
    assert.throws(() => issue(dir, "a.b"), /must be 1-64 characters/);
    assert.throws(() => issue(dir, "ca"), PkiError);
    assert.throws(() => issue(dir, "web", ["bad host!"]), /neither an IP address nor a DNS name/);
    const empty = mkdtempSync(join(tmpdir(), "natsfs-pki-empty-"));
    try {
      assert.throws(() => issue(empty, "alice"), /no CA .*natsfs pki init/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

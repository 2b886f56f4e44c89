import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, Events, type NatsConnection, type NatsError } from "nats";
import { connectBus } from "../src/cli/connect.js";
import { DISCOVERY_SUBSCRIPTION, discoverySubject } from "../src/protocol/index.js";
import { explainConnectError, initCa, issue, parsePolicy, renderNatsConfig, tlsConnectOptions } from "../src/security/index.js";
import { startNatsServer, type NatsServer } from "./helpers/nats.js";

const POLICY = `exports:
  home:   { path: /srv/home }
  secret: { path: /srv/secret }
  public: { path: /srv/public, readOnly: true }
identities:
  alice: { grants: { home: rw, secret: rw } }
  bob:   { grants: { home: ro, public: rw } }
  carol: { grants: { home: rw } }
servers: [fileserver]
`;

/** Fails a promise that has not settled within `ms`, so no test can hang. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function requestCode(nc: NatsConnection, subject: string): Promise<string> {
  try {
    await nc.request(subject, new Uint8Array(), { timeout: 2000 });
    return "replied";
  } catch (err) {
    return (err as NatsError).code;
  }
}

/** Connects with connectBus expecting a refusal; returns its message and how long it took. */
async function refusal(flags: Parameters<typeof connectBus>[0]): Promise<{ message: string; ms: number }> {
  const started = Date.now();
  try {
    const { nc } = await within(10_000, "connectBus", connectBus(flags, "security-test"));
    await nc.close();
  } catch (err) {
    return { message: (err as Error).message, ms: Date.now() - started };
  }
  assert.fail("the connection was accepted");
}

describe("bus security with a rendered nats-server config", () => {
  let root: string;
  let pki: string;
  let rogue: string;
  let config: string;
  let server: NatsServer;
  const open: NatsConnection[] = [];
  const as = async (identity: string) => {
    const { nc } = await connectBus({ nats: server.url, pki, identity }, `test-${identity}`);
    open.push(nc);
    return nc;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "natsfs-security-"));
    pki = join(root, "pki");
    initCa(pki);
    issue(pki, "nats", ["127.0.0.1", "localhost"]);
    for (const name of ["alice", "bob", "fileserver", "mallory"]) issue(pki, name);
    issue(pki, "carol", [], { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    // Another deployment's CA and an "alice" it issued; its ca.pem bundles both CAs so that the
    // client still trusts our nats-server, and only the server can refuse the certificate.
    rogue = join(root, "rogue");
    initCa(rogue);
    issue(rogue, "alice");
    writeFileSync(join(rogue, "ca.pem"), readFileSync(join(rogue, "ca.pem"), "utf8") + readFileSync(join(pki, "ca.pem"), "utf8"));
    config = renderNatsConfig(parsePolicy(POLICY, "policy.yaml"), pki);
    writeFileSync(join(root, "nats.conf"), config);
    server = await startNatsServer({ config, scheme: "tls" });
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => undefined)));
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("renders a config that nats-server accepts", () => {
    const check = spawnSync("nats-server", ["-t", "-c", join(root, "nats.conf")], { encoding: "utf8", timeout: 10_000 });
    assert.equal(check.status, 0, check.stderr + check.stdout);
    assert.match(config, /verify_and_map: true/);
    assert.match(config, /user: "CN=alice"/);
  });

  it("lets alice publish requests her rw grants allow", async () => {
    const alice = await as("alice");
    // No server is listening: 503 proves the publish passed the permission check.
    assert.equal(await requestCode(alice, "natsfs.home.alice.mkdir"), "503");
    assert.equal(await requestCode(alice, "natsfs.secret.alice.write.instance1"), "503");
  });

  it("refuses bob what his ro grants, read-only exports and identity token do not allow", async () => {
    const bob = await as("bob");
    assert.equal(await requestCode(bob, "natsfs.home.bob.getattr"), "503");
    assert.equal(await requestCode(bob, "natsfs.public.bob.read.instance1"), "503");
    assert.equal(await requestCode(bob, "natsfs.home.bob.mkdir"), "PERMISSIONS_VIOLATION");
    assert.equal(await requestCode(bob, "natsfs.public.bob.mkdir"), "PERMISSIONS_VIOLATION", "rw grant on a read-only export");
    assert.equal(await requestCode(bob, "natsfs.home.alice.getattr"), "PERMISSIONS_VIOLATION", "another identity's token");
    assert.equal(await requestCode(bob, "natsfs.secret.bob.getattr"), "PERMISSIONS_VIOLATION", "no grant");
    assert.equal(await requestCode(bob, "something.else"), "PERMISSIONS_VIOLATION");
  });

  it("keeps bob out of alice's inbox: no subscribing, no forged replies", async () => {
    const alice = await as("alice");
    const bob = await as("bob");
    const spy = bob.subscribe("_INBOX_alice.>");
    await assert.rejects(
      within(5000, "bob's subscription", (async () => { for await (const _ of spy) assert.fail("bob read alice's inbox"); })()),
      (err: NatsError) => err.code === "PERMISSIONS_VIOLATION",
    );

    const inbox = alice.subscribe("_INBOX_alice.forged");
    await alice.flush();
    const statuses = (async () => {
      for await (const status of bob.status()) {
        if (status.type === Events.Error && status.permissionContext?.subject === "_INBOX_alice.forged") return `${status.data} ${status.permissionContext.operation}`;
      }
      return "status stream ended";
    })();
    bob.publish("_INBOX_alice.forged", new TextEncoder().encode("forged"));
    await bob.flush();
    assert.equal(await within(5000, "bob's permission error", statuses), "PERMISSIONS_VIOLATION publish");
    await alice.flush();
    assert.equal(inbox.getProcessed(), 0, "alice received a forged reply");
    inbox.unsubscribe();
  });

  it("lets a server answer requests and discovery, and publish nothing else", async () => {
    const fileserver = await as("fileserver");
    const alice = await as("alice");
    const sub = fileserver.subscribe("natsfs.home.*.*", { queue: "natsfs.home", callback: (_err, msg) => msg.respond(new TextEncoder().encode("pong")) });
    const discovery = fileserver.subscribe(DISCOVERY_SUBSCRIPTION, { callback: (_err, msg) => msg.respond(new TextEncoder().encode(msg.subject)) });
    await fileserver.flush();
    const reply = await alice.request("natsfs.home.alice.getattr", new Uint8Array(), { timeout: 2000 });
    assert.equal(new TextDecoder().decode(reply.data), "pong");
    const found = await alice.request(discoverySubject("alice"), new Uint8Array(), { timeout: 2000 });
    assert.equal(new TextDecoder().decode(found.data), "natsfs-discover.alice", "alice discovers on her own subject");
    assert.equal(await requestCode(alice, discoverySubject("bob")), "PERMISSIONS_VIOLATION", "nobody asks as another identity");
    assert.equal(await requestCode(alice, "$SRV.INFO"), "PERMISSIONS_VIOLATION", "the NATS service API is closed to identities");
    assert.equal(await requestCode(fileserver, "natsfs.home.alice.getattr"), "PERMISSIONS_VIOLATION");
    discovery.unsubscribe();
    sub.unsubscribe();
  });

  it("refuses an identity the policy does not name, with what to do", async () => {
    const { message, ms } = await refusal({ nats: server.url, pki, identity: "mallory" });
    assert.match(message, /does not know identity "mallory": add it to the policy file/);
    assert.ok(ms < 6000, `took ${ms} ms`);
  });

  it("refuses a missing, expired or foreign certificate before connecting", async () => {
    const missing = await refusal({ nats: server.url, pki, identity: "dave" });
    assert.match(missing.message, /dave\.pem does not exist: issue one with "natsfs pki issue --dir .* --name dave"/);
    const expired = await refusal({ nats: server.url, pki, identity: "carol" });
    assert.match(expired.message, /carol\.pem expired on .*: issue a new one/);
    const foreignDir = join(root, "foreign");
    mkdirSync(foreignDir);
    copyFileSync(join(pki, "ca.pem"), join(foreignDir, "ca.pem"));
    copyFileSync(join(rogue, "alice.pem"), join(foreignDir, "alice.pem"));
    copyFileSync(join(rogue, "alice.key"), join(foreignDir, "alice.key"));
    const foreign = await refusal({ nats: server.url, pki: foreignDir, identity: "alice" });
    assert.match(foreign.message, /alice\.pem was not issued by the CA in .*ca\.pem/);
    for (const { ms } of [missing, expired, foreign]) assert.ok(ms < 6000, `took ${ms} ms`);
  });

  it("explains a certificate the nats-server refuses, within seconds", async () => {
    const { message, ms } = await refusal({ nats: server.url, pki: rogue, identity: "alice" });
    assert.match(message, /refused the certificate .*alice\.pem .*same CA as the nats-server's/);
    assert.ok(ms < 6000, `took ${ms} ms`);

    // The server's own verdict on material the pre-flight check would have stopped.
    for (const tls of [
      { ca: readFileSync(join(pki, "ca.pem"), "utf8") },
      { ...tlsConnectOptions(pki, "alice"), cert: readFileSync(join(pki, "carol.pem"), "utf8"), key: readFileSync(join(pki, "carol.key"), "utf8") },
    ]) {
      const started = Date.now();
      const err = await connect({ servers: server.url, tls, reconnect: false, timeout: 5000 }).then(
        async (nc) => { await nc.close(); assert.fail("accepted"); },
        (e: unknown) => e,
      );
      assert.match(explainConnectError(err, { servers: server.url, identity: "carol", pkiDir: pki }), /refused the certificate/);
      assert.ok(Date.now() - started < 6000);
    }
  });

  it("refuses plain connections", async () => {
    const plain = await refusal({ nats: server.url.replace("tls://", "nats://"), insecure: true });
    assert.match(plain.message, /requires TLS: pass --pki DIR --identity NAME instead of --insecure/);
    assert.ok(plain.ms < 6000);

    // A raw client that ignores the TLS requirement is dropped without an answer.
    const answer = await within(5000, "raw plain connection", new Promise<string>((resolve, reject) => {
      const socket = netConnect(server.port, "127.0.0.1");
      let received = "";
      socket.on("data", (chunk) => {
        received += chunk.toString();
        if (received.includes("INFO") && !received.includes("CONNECT_SENT")) {
          received += "CONNECT_SENT";
          socket.write('CONNECT {"verbose":false}\r\nPING\r\n');
        }
      });
      socket.on("close", () => resolve(received));
      socket.on("error", reject);
    }));
    assert.match(answer, /"tls_required":true/);
    assert.doesNotMatch(answer, /PONG/);
  });

  it("requires --pki and --identity unless --insecure", async () => {
    await assert.rejects(connectBus({ nats: server.url }, "t"), { name: "UsageError", message: /--pki DIR --identity NAME/ });
    await assert.rejects(connectBus({ nats: server.url, pki, identity: "a.b" }, "t"), { name: "UsageError" });
  });
});

/** `natsfs server` as a process: usage errors, readiness line, discovery, policy files, clean stop. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "nats";
import { discoverExports } from "../src/client/discovery.js";
import { decodeReply, encodeRequest, errnoName, inboxPrefix, requestSubject, type OpName } from "../src/protocol/index.js";
import { startNatsServer, type NatsServer } from "./helpers/nats.js";
import { start, waitFor, type Started } from "./helpers/processes.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.ts");

let nats: NatsServer;
let base: string;
const started: Started[] = [];

function natsfs(args: string[]): Started {
  const proc = start(process.execPath, ["--import", "tsx", MAIN, ...args]);
  started.push(proc);
  return proc;
}

async function exitCode(proc: Started, timeoutMs = 40_000): Promise<number | null> {
  if (proc.child.exitCode !== null) return proc.child.exitCode;
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  try {
    const [code] = (await once(proc.child, "exit")) as [number | null];
    return code;
  } finally {
    clearTimeout(timer);
  }
}

/** One connection per identity, with its own inbox prefix: a server answers an identity nowhere else. */
const requesters = new Map<string, Promise<NatsConnection>>();
function requester(identity: string): Promise<NatsConnection> {
  let connection = requesters.get(identity);
  if (connection === undefined) requesters.set(identity, (connection = connect({ servers: nats.url, inboxPrefix: inboxPrefix(identity) })));
  return connection;
}

async function errnoOf(exportName: string, identity: string, op: OpName, args: unknown): Promise<string> {
  const subject = requestSubject(exportName, identity, op);
  const id = `cli:${Math.random()}`;
  const reply = await (await requester(identity)).request(subject, encodeRequest({ id, deadline: Date.now() + 60_000, args } as never, subject), { timeout: 5000 });
  const { errno } = decodeReply(reply.data, reply.subject, id);
  return errno === 0 ? "ok" : errnoName(errno);
}

async function untilServing(proc: Started): Promise<void> {
  await waitFor("natsfs server ready line", () => proc.output().includes("natsfs server: serving"), 40_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
}

before(async () => {
  nats = await startNatsServer();
  base = mkdtempSync(join(tmpdir(), "natsfs-server-cli-"));
  for (const dir of ["home", "pub"]) mkdirSync(join(base, dir));
});

after(async () => {
  for (const proc of started) await proc.stop("SIGKILL");
  for (const connection of requesters.values()) await (await connection).close();
  await nats?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("natsfs server", () => {
  it("exits 2 on usage errors", async () => {
    const bus = ["server", "--insecure", "--nats", nats.url];
    const bad = natsfs([...bus, "--export", "home"]);
    const codes = await Promise.all(
      [
        natsfs(bus),
        bad,
        natsfs([...bus, "--export", "a=/x", "--policy", "/p.yaml"]),
        natsfs([...bus, "--policy", join(base, "missing.yaml")]),
      ].map((proc) => exitCode(proc)),
    );
    assert.deepEqual(codes, [2, 2, 2, 2]);
    assert.match(bad.output(), /NAME=\/absolute\/path/);
  });

  it("exits 1 when an export directory is missing", async () => {
    const proc = natsfs(["server", "--insecure", "--nats", nats.url, "--export", `home=${join(base, "nope")}`]);
    assert.equal(await exitCode(proc), 1);
    assert.match(proc.output(), /export home/);
  });

  it("serves --export directories, announces them and stops on SIGTERM", async () => {
    const proc = natsfs(["server", "--insecure", "--nats", nats.url, "--export", `home=${join(base, "home")}`, "--export", `pub=${join(base, "pub")}:ro`]);
    await untilServing(proc);
    assert.match(proc.output(), /serving home,pub as instance [0-9a-f]+/);
    assert.equal(await errnoOf("home", "anyone", "mkdir", { path: "/made", mode: 0o755 }), "ok");
    assert.equal(await errnoOf("pub", "anyone", "mkdir", { path: "/made", mode: 0o755 }), "EROFS");

    assert.deepEqual(await discoverExports(await requester("anyone"), "anyone", 5_000), ["home", "pub"]);

    proc.child.kill("SIGTERM");
    assert.equal(await exitCode(proc), 0);
  });

  it("serves the exports and grants of a policy file", async () => {
    const policyFile = join(base, "policy.yaml");
    writeFileSync(
      policyFile,
      [
        "exports:",
        `  home: { path: ${join(base, "home")} }`,
        `  pub: { path: ${join(base, "pub")}, readOnly: true }`,
        "identities:",
        "  alice: { grants: { home: rw, pub: ro } }",
        "  bob: { grants: { pub: ro } }",
        "servers: [fileserver]",
        "",
      ].join("\n"),
    );
    const wrongIdentity = natsfs(["server", "--insecure", "--nats", nats.url, "--policy", policyFile, "--identity", "alice"]);
    assert.equal(await exitCode(wrongIdentity), 2);

    const proc = natsfs(["server", "--insecure", "--nats", nats.url, "--policy", policyFile, "--identity", "fileserver"]);
    await untilServing(proc);
    assert.equal(await errnoOf("home", "alice", "getattr", { path: "/" }), "ok");
    assert.equal(await errnoOf("home", "bob", "getattr", { path: "/" }), "EACCES");
    assert.equal(await errnoOf("pub", "bob", "getattr", { path: "/" }), "ok");
    assert.equal(await errnoOf("pub", "alice", "mkdir", { path: "/x", mode: 0o755 }), "EROFS");
    proc.child.kill("SIGINT");
    assert.equal(await exitCode(proc), 0);
  });
});

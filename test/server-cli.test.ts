/** `natsfs server` as a process: usage errors, readiness line, discovery, policy files, clean stop. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "nats";
import { SERVICE_NAME, decodeReply, encodeRequest, errnoName, requestSubject, type OpName } from "../src/protocol/index.js";
import { startNatsServer, type NatsServer } from "./helpers/nats.js";
import { start, waitFor, type Started } from "./helpers/processes.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.ts");

let nats: NatsServer;
let nc: NatsConnection;
let base: string;
const started: Started[] = [];

function natsfs(args: string[]): Started {
  const proc = start(process.execPath, ["--import", "tsx", MAIN, ...args]);
  started.push(proc);
  return proc;
}

async function exitCode(proc: Started, timeoutMs = 15_000): Promise<number | null> {
  if (proc.child.exitCode !== null) return proc.child.exitCode;
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  try {
    const [code] = (await once(proc.child, "exit")) as [number | null];
    return code;
  } finally {
    clearTimeout(timer);
  }
}

async function errnoOf(exportName: string, identity: string, op: OpName, args: unknown): Promise<string> {
  const subject = requestSubject(exportName, identity, op);
  const reply = await nc.request(subject, encodeRequest({ id: `cli:${Math.random()}`, args } as never, subject), { timeout: 5000 });
  const { errno } = decodeReply(reply.data, reply.subject);
  return errno === 0 ? "ok" : errnoName(errno);
}

async function untilServing(proc: Started): Promise<void> {
  await waitFor("natsfs server ready line", () => proc.output().includes("natsfs server: serving"), 15_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
}

before(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  base = mkdtempSync(join(tmpdir(), "natsfs-server-cli-"));
  for (const dir of ["home", "pub"]) mkdirSync(join(base, dir));
});

after(async () => {
  for (const proc of started) await proc.stop("SIGKILL");
  await nc?.close();
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

    const infos = await nc.services.client().info(SERVICE_NAME);
    const announced: string[] = [];
    for await (const info of infos) announced.push(info.metadata?.exports ?? "");
    assert.deepEqual(announced, ["home,pub"]);

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

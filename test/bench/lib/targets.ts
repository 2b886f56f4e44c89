// The file systems the benchmark compares, each started fresh and stopped after its rows: the local
// disk (the ceiling), sshfs over loopback against a private sshd, natsfs over mutual TLS as deployed,
// and the no-op fuse-native file system (the adapter's ceiling).
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CLI, isFuseMounted, removeUnlessMounted, stopProcess, unmount } from "../../helpers/mount.js";
import { startNatsServer } from "../../helpers/nats.js";
import { freePort } from "../../helpers/ports.js";
import { start, waitFor, type Started } from "../../helpers/processes.js";
import { initCa, issue, loadPolicy, renderNatsConfig } from "../../../src/security/index.js";
import { mustRun, recordPid } from "./system.js";

export interface Target {
  /** Column key in the results. */
  key: string;
  /** Column heading. */
  label: string;
  /** Where the workloads run. */
  dir: string;
  /**
   * The same directory on the local disk, when there is one: large inputs are laid out and results
   * removed there, so that preparing and cleaning up is not measured.
   */
  backingDir?: string;
  /** The process serving the mount, whose peak RSS is measured. */
  daemonPid?: number;
  stop(): Promise<void>;
}

export interface NatsfsTarget extends Target {
  /** The stack's nats-server (mutual TLS, config rendered from the policy) and its PKI directory. */
  natsUrl: string;
  pki: string;
  exportName: string;
  serverPid: number;
  mountPid: number;
  /** natsfs server's /metrics, from which the data path's message sizes are read. */
  serverMetricsUrl: string;
}

/** Generous: on a loaded 2-core machine a cold `natsfs mount` has taken over 15 s to start. */
const MOUNT_TIMEOUT_MS = 120_000;
const NOOP_FS = resolve(dirname(fileURLToPath(import.meta.url)), "../noop-fs.ts");

/** A started process that the runner's trap may kill by PID. */
function startRecorded(command: string, args: string[]): Started {
  const proc = start(command, args);
  recordPid(proc.pid);
  return proc;
}

/** Waits until the kernel shows a FUSE mount served by `proc`; fails at once if `proc` exits first. */
async function waitForMount(what: string, proc: Started, mountpoint: string): Promise<void> {
  const exitedEarly = () => proc.child.exitCode !== null || proc.child.signalCode !== null;
  await waitFor(what, async () => exitedEarly() || (await isFuseMounted(mountpoint)), MOUNT_TIMEOUT_MS);
  if (exitedEarly()) throw new Error(`${what}: the process exited (${proc.child.exitCode ?? proc.child.signalCode}) before the mount was live:\n${proc.output()}`);
}

/** Unmounts, then stops the mount's own process. */
async function stopMount(mountpoint: string, ...procs: Started[]): Promise<void> {
  await unmount(mountpoint);
  for (const proc of procs) await stopProcess(proc);
}

export function localTarget(): Target {
  const dir = mkdtempSync(join(tmpdir(), "local-"));
  return { key: "local", label: "local disk", dir, backingDir: dir, stop: async () => undefined };
}

/**
 * sshfs over loopback against a private sshd (its own host key, client key and config), sshfs's default
 * caching. The sshfs binary is BENCH_SSHFS (scripts/run-bench.sh unpacks one), else the one on PATH.
 */
export async function sshfsTarget(): Promise<Target> {
  const sshfsBinary = process.env.BENCH_SSHFS ?? "sshfs";
  if (!existsSync("/usr/sbin/sshd")) throw new Error("/usr/sbin/sshd is missing (apt-get install openssh-server)");
  const root = mkdtempSync(join(tmpdir(), "sshfs-"));
  const exportDir = join(root, "export");
  const mountpoint = join(root, "mnt");
  mkdirSync(exportDir);
  mkdirSync(mountpoint);
  mkdirSync("/run/sshd", { recursive: true });
  const keygen = (name: string) => mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(root, name)], 10_000);
  await keygen("host_key");
  await keygen("client_key");
  const port = await freePort();
  writeFileSync(
    join(root, "sshd_config"),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${join(root, "host_key")}`,
      `AuthorizedKeysFile ${join(root, "client_key.pub")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "StrictModes no",
      "Subsystem sftp internal-sftp",
      `PidFile ${join(root, "sshd.pid")}`,
    ].join("\n") + "\n",
  );
  const sshd = startRecorded("/usr/sbin/sshd", ["-D", "-e", "-f", join(root, "sshd_config")]);
  let sshfs: Started | undefined;
  try {
    await waitFor("sshd to listen", () => sshd.output().includes("listening") || sshd.child.exitCode !== null, 10_000);
    const options = `IdentityFile=${join(root, "client_key")},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes`;
    sshfs = startRecorded(sshfsBinary, ["-f", "-p", String(port), "-o", options, `root@127.0.0.1:${exportDir}`, mountpoint]);
    await waitForMount("sshfs mount", sshfs, mountpoint);
  } catch (err) {
    await stopMount(mountpoint, ...(sshfs ? [sshfs] : []), sshd);
    throw new Error(`${(err as Error).message}\n--- sshd ---\n${sshd.output()}`);
  }
  return {
    key: "sshfs",
    label: "sshfs",
    dir: mountpoint,
    backingDir: exportDir,
    daemonPid: sshfs.pid,
    stop: () => stopMount(mountpoint, sshfs, sshd),
  };
}

/** Identities of the natsfs stack: the nats-server's certificate, the file server, the mounting client. */
export const NATSFS_IDENTITIES = { nats: "nats", server: "fileserver", client: "tester" } as const;
const EXPORT_NAME = "data";

/**
 * natsfs as deployed: a CA and certificates, a policy granting the client rw on one export, nats-server
 * with mutual TLS and the config rendered from that policy, then `natsfs server` and `natsfs mount`
 * through the CLI, under node with `nodeArgs` (a profiler, say). (The test helpers' startStack does the
 * same with a 15 s mount deadline, too short on a loaded machine.)
 */
export async function natsfsTarget(options: { nodeArgs?: string[] } = {}): Promise<NatsfsTarget> {
  const node = [...(options.nodeArgs ?? []), CLI];
  const root = mkdtempSync(join(tmpdir(), "natsfs-"));
  const exportDir = join(root, "export");
  const mountpoint = join(root, "mnt");
  const pki = join(root, "pki");
  mkdirSync(exportDir);
  mkdirSync(mountpoint);
  initCa(pki);
  issue(pki, NATSFS_IDENTITIES.nats, ["127.0.0.1", "localhost"]);
  issue(pki, NATSFS_IDENTITIES.server);
  issue(pki, NATSFS_IDENTITIES.client);
  const policyFile = join(root, "policy.json");
  const policy = {
    exports: { [EXPORT_NAME]: { path: exportDir } },
    identities: { [NATSFS_IDENTITIES.client]: { grants: { [EXPORT_NAME]: "rw" } } },
    servers: [NATSFS_IDENTITIES.server],
  };
  writeFileSync(policyFile, JSON.stringify(policy, null, 2));

  const procs: Started[] = [];
  const stop = async () => {
    const [nats, server, mount] = procs;
    if (mount) await stopMount(mountpoint, mount);
    for (const proc of [server, nats]) if (proc) await stopProcess(proc);
    removeUnlessMounted(root);
  };
  try {
    const nats = await startNatsServer({ config: renderNatsConfig(loadPolicy(policyFile), pki, { certName: NATSFS_IDENTITIES.nats }), scheme: "tls" });
    recordPid(nats.pid);
    procs.push(nats);
    const bus = (identity: string) => ["--nats", nats.url, "--pki", pki, "--identity", identity];
    const serverMetricsPort = await freePort();
    procs.push(startRecorded(process.execPath, [...node, "server", ...bus(NATSFS_IDENTITIES.server), "--policy", policyFile, "--metrics-port", String(serverMetricsPort)]));
    const mount = startRecorded(process.execPath, [...node, "mount", ...bus(NATSFS_IDENTITIES.client), "--export", EXPORT_NAME, mountpoint, "--foreground"]);
    procs.push(mount);
    await waitForMount("natsfs mount", mount, mountpoint);
    return {
      key: "natsfs",
      label: "natsfs (TLS)",
      dir: mountpoint,
      backingDir: exportDir,
      daemonPid: mount.pid,
      natsUrl: nats.url,
      pki,
      exportName: EXPORT_NAME,
      serverPid: procs[1]!.pid,
      mountPid: mount.pid,
      serverMetricsUrl: `http://127.0.0.1:${serverMetricsPort}/metrics`,
      stop,
    };
  } catch (err) {
    const output = procs.map((p, i) => `--- ${["nats-server", "natsfs server", "natsfs mount"][i]} ---\n${p.output().slice(-3000)}`).join("\n");
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
}

/** The no-op in-memory fuse-native file system with kernel attribute and entry timeouts of `attrTimeoutS`. */
export async function noopTarget(attrTimeoutS: number): Promise<Target> {
  const mountpoint = mkdtempSync(join(tmpdir(), "noop-"));
  const proc = startRecorded(process.execPath, ["--import", "tsx", NOOP_FS, "--attr-timeout", String(attrTimeoutS), mountpoint]);
  try {
    await waitForMount("no-op fs mount", proc, mountpoint);
  } catch (err) {
    await stopMount(mountpoint, proc);
    throw err;
  }
  return {
    key: `noop-${attrTimeoutS}`,
    label: attrTimeoutS === 0 ? "no-op fs, kernel caches off" : `no-op fs, kernel caches ${attrTimeoutS} s`,
    dir: mountpoint,
    daemonPid: proc.pid,
    stop: () => stopMount(mountpoint, proc),
  };
}

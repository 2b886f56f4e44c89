// Sequential throughput and metadata rates through a natsfs mount (plain and mutual TLS), next to
// the same work on the exported directory itself and, when sshfs and sshd are installed, through
// sshfs over loopback. Prints BENCH lines for scripts/run-bench.sh.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run, startStack, unmount } from "../helpers/mount.js";
import { freePort } from "../helpers/ports.js";

const FILE_MB = Number(process.env.NATSFS_BENCH_MB ?? "256");
const SMALL_FILES = Number(process.env.NATSFS_BENCH_FILES ?? "1000");

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${JSON.stringify({ name, value: Math.round(value * 10) / 10, unit })}`);
}

function dropCaches(): void {
  try {
    execFileSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]);
  } catch {
    // not root: cached reads then measure the page cache too
  }
}

/** Seconds one run of `dd` takes. */
function dd(input: string, output: string, extra: string[] = []): number {
  const started = process.hrtime.bigint();
  execFileSync("dd", [`if=${input}`, `of=${output}`, "bs=1M", ...extra], { stdio: "ignore" });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function measure(label: string, dir: string, source: string): Promise<void> {
  const target = join(dir, "bench.bin");
  dropCaches();
  report(`${label}: sequential write ${FILE_MB} MiB (fsync)`, FILE_MB / dd(source, target, ["conv=fsync"]), "MiB/s");
  dropCaches();
  report(`${label}: sequential read ${FILE_MB} MiB`, FILE_MB / dd(target, "/dev/null"), "MiB/s");
  await fs.rm(target);

  const tree = join(dir, "small");
  await fs.mkdir(tree);
  let started = performance.now();
  for (let i = 0; i < SMALL_FILES; i++) await fs.writeFile(join(tree, `f${i}`), "x".repeat(100));
  report(`${label}: create+write+close 100 B files`, SMALL_FILES / ((performance.now() - started) / 1000), "files/s");
  started = performance.now();
  for (let i = 0; i < SMALL_FILES; i++) await fs.stat(join(tree, `f${i}`));
  report(`${label}: stat`, SMALL_FILES / ((performance.now() - started) / 1000), "ops/s");
  started = performance.now();
  await fs.rm(tree, { recursive: true });
  report(`${label}: unlink`, SMALL_FILES / ((performance.now() - started) / 1000), "files/s");
}

/**
 * sshfs against a private sshd on 127.0.0.1 (its own host key, client key and config below `root`),
 * with sshfs's usual caching; undefined when either is not installed.
 */
async function withSshfs(root: string, exportDir: string, work: (mountpoint: string) => Promise<void>): Promise<void> {
  const dir = join(root, "sshfs");
  if (!existsSync("/usr/sbin/sshd") || !existsSync("/usr/bin/sshfs")) {
    console.log("bench: sshfs or sshd not installed (apt-get install sshfs openssh-server): no sshfs comparison");
    return;
  }
  const port = await freePort();
  await fs.mkdir(dir);
  await fs.mkdir("/run/sshd", { recursive: true });
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
  await fs.copyFile(join(dir, "client_key.pub"), join(dir, "authorized_keys"));
  await fs.writeFile(
    join(dir, "sshd_config"),
    [`ListenAddress 127.0.0.1:${port}`, `HostKey ${join(dir, "host_key")}`, `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PermitRootLogin prohibit-password", "PasswordAuthentication no", "StrictModes no", "Subsystem sftp internal-sftp", `PidFile ${join(dir, "sshd.pid")}`].join("\n"),
  );
  const mountpoint = join(dir, "mnt");
  await fs.mkdir(mountpoint);
  const sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: "ignore" });
  try {
    await sleep(500);
    const mounted = await run("sshfs", ["-p", String(port), "-o", `IdentityFile=${join(dir, "client_key")},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null`,
      `root@127.0.0.1:${exportDir}`, mountpoint], { timeoutMs: 20_000 });
    if (mounted.code !== 0) throw new Error(`sshfs: ${mounted.stderr}`);
    await work(mountpoint);
  } finally {
    await unmount(mountpoint).catch(() => undefined);
    sshd.kill();
  }
}

const source = join(process.env.TMPDIR ?? "/tmp", `natsfs-bench-source-${process.pid}`);
execFileSync("dd", ["if=/dev/urandom", `of=${source}`, "bs=1M", `count=${FILE_MB}`], { stdio: "ignore" });
try {
  for (const insecure of [true, false]) {
    const stack = await startStack({ insecure });
    try {
      if (insecure) {
        await measure("local disk (the export itself)", stack.exportDir, source);
        await withSshfs(stack.root, stack.exportDir, (mountpoint) => measure("sshfs over loopback", mountpoint, source));
      }
      await measure(insecure ? "natsfs, plain NATS" : "natsfs, mutual TLS", stack.mountpoint, source);
    } finally {
      await stack.teardown();
    }
  }
} finally {
  await fs.rm(source, { force: true });
}

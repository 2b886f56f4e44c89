import type { Command } from "commander";
import { isToken } from "../protocol/index.js";
import { certPath, initCa, issue, keyPath, list, type CertSummary } from "../security/index.js";
import { UsageError, collect } from "./common.js";

function parseDays(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days "${value}" must be a whole number of days, at least 1`);
  return days;
}

function describe(cert: CertSummary): string {
  return `${cert.subject}, valid until ${cert.notAfter.toISOString()}, SHA-256 ${cert.fingerprint256}`;
}

export function registerPki(program: Command): void {
  const pki = program.command("pki").description("the deployment's certificate authority and certificates");

  pki
    .command("init")
    .description("create the CA (ca.pem, ca.key) in DIR")
    .requiredOption("--dir <dir>", "PKI directory")
    .option("--force", "replace an existing CA (every certificate it issued stops working)")
    .action((opts: { dir: string; force?: boolean }) => {
      const ca = initCa(opts.dir, { force: opts.force ?? false });
      process.stdout.write(`created ${certPath(opts.dir, "ca")} and ${keyPath(opts.dir, "ca")}: ${describe(ca)}\n`);
    });

  pki
    .command("issue")
    .description("issue NAME.pem and NAME.key for an identity (client, server) or the nats-server")
    .requiredOption("--dir <dir>", "PKI directory holding the CA")
    .requiredOption("--name <name>", "identity: the certificate's common name")
    .option("--host <host>", "DNS name or IP address the holder serves on (repeatable)", collect, [])
    .option("--days <n>", "days of validity (default 365)", parseDays)
    .option("--force", "replace an existing certificate of that name")
    .action((opts: { dir: string; name: string; host: string[]; days?: number; force?: boolean }) => {
      if (!isToken(opts.name)) throw new UsageError(`--name "${opts.name}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
      const options = opts.days === undefined ? { force: opts.force ?? false } : { force: opts.force ?? false, days: opts.days };
      const cert = issue(opts.dir, opts.name, opts.host, options);
      process.stdout.write(`created ${certPath(opts.dir, opts.name)} and ${keyPath(opts.dir, opts.name)}: ${describe(cert)}, ${cert.subjectAltName ?? "no alternative names"}\n`);
    });

  pki
    .command("list")
    .description("list the certificates in DIR")
    .requiredOption("--dir <dir>", "PKI directory")
    .action((opts: { dir: string }) => {
      const rows = list(opts.dir).map((c) => [c.name, c.subject, c.notAfter.toISOString(), c.fingerprint256]);
      const table = [["NAME", "SUBJECT", "NOT AFTER", "SHA-256 FINGERPRINT"], ...rows];
      const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
      for (const row of table) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
    });
}

import { X509Certificate, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";
import { assertToken } from "../protocol/index.js";

/** File names inside a PKI directory. */
export const CA_NAME = "ca";
export const certPath = (dir: string, name: string): string => join(dir, `${name}.pem`);
export const keyPath = (dir: string, name: string): string => join(dir, `${name}.key`);

const DAY_MS = 24 * 60 * 60 * 1000;

export const PKI_DEFAULTS = {
  caDays: 3650,
  leafDays: 365,
  rsaBits: 2048,
  /** Backdating notBefore tolerates small clock differences between machines. */
  clockSkewMs: 5 * 60 * 1000,
} as const;

export interface Validity {
  /** Days from now (minus clock skew) until expiry; ignored when notAfter is given. */
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
}

export interface InitCaOptions extends Validity {
  force?: boolean;
}

export interface IssueOptions extends Validity {
  force?: boolean;
}

export interface CertSummary {
  name: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 fingerprint, colon-separated hex as openssl prints it. */
  fingerprint256: string;
  subjectAltName?: string;
}

/** A PKI operation refused for a reason the user can fix (existing files, missing CA, bad name). */
export class PkiError extends Error {
  override readonly name = "PkiError";
}

function validity(options: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = options.notBefore ?? new Date(Date.now() - PKI_DEFAULTS.clockSkewMs);
  const notAfter = options.notAfter ?? new Date(Date.now() + (options.days ?? defaultDays) * DAY_MS);
  if (notAfter <= notBefore) throw new PkiError(`certificate would expire (${notAfter.toISOString()}) before it is valid (${notBefore.toISOString()})`);
  return { notBefore, notAfter };
}

/** node:crypto generates RSA keys in native code, far faster than forge's pure JavaScript. */
function generateKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; privateKeyPem: string } {
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: PKI_DEFAULTS.rsaBits,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), privateKeyPem: privateKey };
}

/** A positive random 128-bit serial (the high bit cleared so DER does not read it as negative). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString("hex");
}

function refuseOverwrite(paths: string[], force: boolean | undefined, what: string): void {
  const existing = paths.filter((path) => existsSync(path));
  if (existing.length > 0 && !force) {
    throw new PkiError(`${existing.join(" and ")} already ${existing.length === 1 ? "exists" : "exist"}: pass --force to replace the ${what}`);
  }
}

function writeKeyAndCert(dir: string, name: string, keyPem: string, certPem: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyPath(dir, name), keyPem, { mode: 0o600 });
  // mode only applies on creation: a forced overwrite must tighten an existing file too.
  chmodSync(keyPath(dir, name), 0o600);
  writeFileSync(certPath(dir, name), certPem, { mode: 0o644 });
}

/** A certificate for `publicKey` with a random serial and the validity `options` ask for. */
function newCertificate(publicKey: forge.pki.PublicKey, options: Validity, defaultDays: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  const { notBefore, notAfter } = validity(options, defaultDays);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  return cert;
}

/** Creates the deployment's CA: <dir>/ca.pem and <dir>/ca.key (0600). */
export function initCa(dir: string, options: InitCaOptions = {}): CertSummary {
  refuseOverwrite([certPath(dir, CA_NAME), keyPath(dir, CA_NAME)], options.force, "CA (every issued certificate becomes useless)");
  const keys = generateKeyPair();
  const cert = newCertificate(keys.publicKey, options, PKI_DEFAULTS.caDays);
  const subject = [{ name: "commonName", value: "natsfs CA" }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  writeKeyAndCert(dir, CA_NAME, keys.privateKeyPem, forge.pki.certificateToPem(cert));
  return summarize(CA_NAME, readFileSync(certPath(dir, CA_NAME)));
}

function loadCa(dir: string): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  if (!existsSync(certPath(dir, CA_NAME)) || !existsSync(keyPath(dir, CA_NAME))) {
    throw new PkiError(`no CA in ${dir}: run "natsfs pki init --dir ${dir}" first`);
  }
  return {
    cert: forge.pki.certificateFromPem(readFileSync(certPath(dir, CA_NAME), "utf8")),
    key: forge.pki.privateKeyFromPem(readFileSync(keyPath(dir, CA_NAME), "utf8")) as forge.pki.rsa.PrivateKey,
  };
}

/** Subject alternative names: the name itself as a DNS name, plus every host (DNS name or IP). */
export function subjectAltNames(name: string, hosts: readonly string[]): Array<{ type: 2; value: string } | { type: 7; ip: string }> {
  const unique = [...new Set([name, ...hosts])];
  return unique.map((host) => (isIP(host) ? { type: 7 as const, ip: host } : { type: 2 as const, value: host }));
}

/**
 * Issues <dir>/<name>.pem and <dir>/<name>.key (0600), signed by the CA with SHA-256. One certificate
 * serves both as a client (identity) and as a server (hosts), so it carries both key purposes.
 */
export function issue(dir: string, name: string, hosts: readonly string[] = [], options: IssueOptions = {}): CertSummary {
  assertToken("name", name);
  if (name === CA_NAME) throw new PkiError(`"${CA_NAME}" is the CA's own file name: choose another name`);
  for (const host of hosts) {
    if (!isIP(host) && !/^[A-Za-z0-9*]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(host)) throw new PkiError(`host "${host}" is neither an IP address nor a DNS name`);
  }
  refuseOverwrite([certPath(dir, name), keyPath(dir, name)], options.force, `certificate of ${name}`);
  const ca = loadCa(dir);
  const keys = generateKeyPair();
  const cert = newCertificate(keys.publicKey, options, PKI_DEFAULTS.leafDays);
  cert.setSubject([{ name: "commonName", value: name }]);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: subjectAltNames(name, hosts) },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  writeKeyAndCert(dir, name, keys.privateKeyPem, forge.pki.certificateToPem(cert));
  return summarize(name, readFileSync(certPath(dir, name)));
}

export function summarize(name: string, pem: Buffer | string): CertSummary {
  const cert = new X509Certificate(pem);
  const summary: CertSummary = {
    name,
    subject: cert.subject,
    issuer: cert.issuer,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint256: cert.fingerprint256,
  };
  if (cert.subjectAltName !== undefined) summary.subjectAltName = cert.subjectAltName;
  return summary;
}

/** Every certificate in the directory, the CA first. */
export function list(dir: string): CertSummary[] {
  if (!existsSync(dir)) throw new PkiError(`${dir} does not exist: run "natsfs pki init --dir ${dir}" first`);
  const names = readdirSync(dir)
    .filter((file) => file.endsWith(".pem"))
    .map((file) => file.slice(0, -".pem".length))
    .sort((a, b) => (a === CA_NAME ? -1 : b === CA_NAME ? 1 : a.localeCompare(b)));
  return names.map((name) => summarize(name, readFileSync(certPath(dir, name))));
}

import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { assertToken } from "../protocol/index.js";
import { CA_NAME, certPath, keyPath } from "./pki.js";

/** The `tls` connection option of nats.js: PEM contents, checked before use. */
export interface NatsTlsOptions {
  ca: string;
  cert: string;
  key: string;
}

/** Local TLS material that cannot work; the message says what is wrong and what to do. */
export class TlsSetupError extends Error {
  override readonly name = "TlsSetupError";
}

function readPem(path: string, missing: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsSetupError(code === "ENOENT" ? `${path} does not exist: ${missing}` : `cannot read ${path}: ${(err as Error).message}`);
  }
}

function parseCert(path: string, pem: string, fix: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new TlsSetupError(`${path} is not a PEM certificate: ${fix}`);
  }
}

/** The certificate's common name, from a subject such as "CN=alice" (one attribute per line). */
function commonName(cert: X509Certificate): string | undefined {
  return cert.subject.split("\n").find((line) => line.startsWith("CN="))?.slice(3);
}

function checkValidity(path: string, cert: X509Certificate, now: Date, fix: string): void {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) throw new TlsSetupError(`${path} is not valid before ${notBefore.toISOString()} (check this machine's clock): ${fix}`);
  if (now > notAfter) throw new TlsSetupError(`${path} expired on ${notAfter.toISOString()}: ${fix}`);
}

/**
 * Reads and checks an identity's TLS material in `pkiDir` and returns it as nats.js `tls` options.
 * nats-server under TLS 1.3 reports a rejected client certificate only as a connect timeout, so
 * every problem we can see locally (missing files, wrong key, another CA, expiry, wrong name) is
 * reported here at once instead.
 */
export function tlsConnectOptions(pkiDir: string, identity: string, now: Date = new Date()): NatsTlsOptions {
  assertToken("identity", identity);
  const dir = resolve(pkiDir);
  const reissue = `issue a new one with "natsfs pki issue --dir ${dir} --name ${identity} --force"`;
  const caFile = certPath(dir, CA_NAME);
  const certFile = certPath(dir, identity);
  const keyFile = keyPath(dir, identity);

  const ca = readPem(caFile, `copy the deployment's CA certificate there (created by "natsfs pki init --dir ${dir}")`);
  const cert = readPem(certFile, `issue one with "natsfs pki issue --dir ${dir} --name ${identity}"`);
  const key = readPem(keyFile, `copy ${identity}.key next to ${identity}.pem, or ${reissue}`);

  const caCert = parseCert(caFile, ca, "copy the deployment's ca.pem there");
  const leaf = parseCert(certFile, cert, reissue);
  checkValidity(caFile, caCert, now, "the deployment's CA must be renewed and every certificate issued again");
  checkValidity(certFile, leaf, now, reissue);
  if (!leaf.checkIssued(caCert) || !leaf.verify(caCert.publicKey)) {
    throw new TlsSetupError(`${certFile} was not issued by the CA in ${caFile}: ${reissue} with that CA, or copy the deployment's ca.pem into ${dir}`);
  }
  const name = commonName(leaf);
  if (name !== identity) {
    throw new TlsSetupError(`${certFile} is the certificate of "${name ?? leaf.subject}", not of identity "${identity}": ${reissue}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsSetupError(`${keyFile} is not a PEM private key: ${reissue}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsSetupError(`${keyFile} does not belong to ${certFile}: ${reissue}`);
  }
  return { ca, cert, key };
}

export interface ConnectContext {
  /** Comma-separated servers as given on the command line. */
  servers: string;
  identity: string;
  /** Undefined for a plain (--insecure) connection. */
  pkiDir?: string;
}

/**
 * One line that says why connecting to the bus failed and what to do, from a nats.js or TLS error.
 * Without it a refused certificate shows up as a bare TIMEOUT or an OpenSSL alert number.
 */
export function explainConnectError(err: unknown, context: ConnectContext): string {
  const { servers, identity, pkiDir } = context;
  const code = String((err as { code?: unknown }).code ?? "");
  const detail = (err as Error).message ?? String(err);
  const at = `nats-server at ${servers}`;
  const certFile = pkiDir === undefined ? undefined : certPath(resolve(pkiDir), identity);
  // Under TLS 1.3 the client finishes its side of the handshake before the server checks the
  // client certificate, so a refusal arrives as an alert or as a reset connection.
  const refused = code.includes("ALERT") || (code === "ECONNRESET" && certFile !== undefined);
  if (refused) {
    if (certFile === undefined) return `${at} requires TLS with a client certificate: pass --pki DIR --identity NAME instead of --insecure`;
    return `${at} refused the certificate ${certFile} (${code}): it must come from the same CA as the nats-server's and be valid; issue one with "natsfs pki issue --dir ${resolve(pkiDir!)} --name ${identity} --force" using the deployment's CA`;
  }
  if (code === "AUTHORIZATION_VIOLATION") {
    return `${at} does not know identity "${identity}": add it to the policy file, render the config again with "natsfs nats-config" and reload nats-server`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `the nats-server's certificate does not name the host in ${servers}: issue the nats-server's certificate with --host for that address, or connect by a name it carries (${detail})`;
  }
  if (/CERT|SIGNATURE|ISSUER|SELF_SIGNED/.test(code)) {
    if (certFile === undefined) return `${at} requires TLS: pass --pki DIR --identity NAME instead of --insecure`;
    return `the nats-server's certificate at ${servers} is not trusted with ${resolve(pkiDir!)}/ca.pem (${code}): copy the deployment's ca.pem there, or issue the nats-server's certificate from this CA`;
  }
  if (code === "SERVER_OPT_NA" && certFile !== undefined) {
    return `${at} does not offer TLS: start it with a config from "natsfs nats-config", or pass --insecure for a plain local test server`;
  }
  if (code === "CONNECTION_REFUSED" || code === "ECONNREFUSED") {
    return `cannot reach ${at}: check that it is running and the URL is right`;
  }
  if (code === "TIMEOUT" || code === "CONNECTION_TIMEOUT") {
    return `no answer from ${at} in time: check the URL and that it is the natsfs bus (a refused certificate can also look like this)`;
  }
  return `cannot connect to ${at} as "${identity}": ${detail}${code ? ` (${code})` : ""}`;
}

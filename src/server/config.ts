import { isAbsolute } from "node:path";
import { isToken } from "../protocol/index.js";
import type { AdmissionLimits } from "./admission.js";
import type { LogLimits } from "./log-limiter.js";

/** What happens to ownership on an export (see export.ts for how it is applied). */
export type Squash = "none" | "root" | "all";

/** One exported directory. */
export interface ExportConfig {
  /** Subject token clients mount it by. */
  name: string;
  /** Absolute directory on the server's disk. */
  path: string;
  readOnly: boolean;
  squash: Squash;
  anonUid: number;
  anonGid: number;
  /**
   * Clients with squash "none" may make block and character device nodes (default false). A device
   * node on the server's disk is a door into the server host: any local user there who can reach it
   * reads or writes the device (a disk, /dev/mem) with the node's modes. FIFOs and sockets need no
   * such permission. The server itself never opens a device node.
   */
  devices?: boolean;
}

export type Grant = "rw" | "ro";

/** Decides what an identity (from the request subject) may do on an export. */
export interface AccessPolicy {
  grant(identity: string, exportName: string): Grant | undefined;
}

/** Tunables of a server, with their defaults in DEFAULT_SERVER_OPTIONS. */
export interface ServerOptions {
  /** Entries kept in the duplicate-request cache, and how long a finished reply stays there. */
  drcEntries: number;
  drcTtlMs: number;
  /** Open file and directory handles one export holds at most; beyond it the largest holder's least recently used idle one is closed. */
  maxHandlesPerExport: number;
  /** Handles one identity holds at most on one export; beyond it its own least recently used idle one is closed. */
  maxHandlesPerIdentity: number;
  /** Memory charged to the process budget per open handle (fd, slot, directory stream buffer). */
  bytesPerHandle: number;
  /** Admission control (admission.ts): per-identity and process bounds on requests in flight and queued. */
  admission: AdmissionLimits;
  /** A client not heard from this long loses its handles (it renews every third of it). */
  leaseMs: number;
  /** Log lines an identity can cause: a burst, then this many per second per kind. */
  logLimits: LogLimits;
  /** Bytes of names one readdir reply carries at most; larger directories come in pages. */
  maxListingBytes: number;
  /** `.fuse_hidden*` leftovers unchanged this long are removed at start (see leftovers.ts). */
  leftoverGraceMs: number;
}

export const DEFAULT_SERVER_OPTIONS: Readonly<ServerOptions> = {
  drcEntries: 16384,
  drcTtlMs: 120_000,
  maxHandlesPerExport: 4096,
  maxHandlesPerIdentity: 1024,
  bytesPerHandle: 16 * 1024,
  admission: {
    perIdentityRequests: 64,
    perIdentityBytes: 16 * 1024 * 1024,
    perIdentityQueue: 1024,
    queuedBytes: 64 * 1024 * 1024,
    memoryBytes: 256 * 1024 * 1024,
  },
  leaseMs: 90_000,
  logLimits: { burst: 20, perSecond: 1 },
  maxListingBytes: 256 * 1024,
  leftoverGraceMs: 24 * 60 * 60 * 1000,
};

/** The nobody/nogroup ids an export squashes to unless its policy says otherwise. */
export const DEFAULT_ANON_ID = 65534;

export class ExportSpecError extends Error {
  override readonly name = "ExportSpecError";
}

/**
 * Parses a CLI `--export NAME=PATH[:ro]` value. Export names are subject tokens; paths must be
 * absolute so that what is served never depends on the server's working directory.
 */
export function parseExportSpec(spec: string): ExportConfig {
  const equals = spec.indexOf("=");
  if (equals <= 0) throw new ExportSpecError(`--export "${spec}" must look like NAME=/absolute/path[:ro]`);
  const name = spec.slice(0, equals);
  let path = spec.slice(equals + 1);
  let readOnly = false;
  if (path.endsWith(":ro")) {
    readOnly = true;
    path = path.slice(0, -3);
  } else if (path.endsWith(":rw")) {
    path = path.slice(0, -3);
  }
  if (!isToken(name)) throw new ExportSpecError(`export name "${name}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
  if (!isAbsolute(path)) throw new ExportSpecError(`export path "${path}" must be absolute`);
  if (path.includes("\0")) throw new ExportSpecError(`export path of "${name}" contains NUL`);
  return { name, path, readOnly, squash: "none", anonUid: DEFAULT_ANON_ID, anonGid: DEFAULT_ANON_ID };
}

/** Parses every `--export` value; names must be unique. */
export function parseExportSpecs(specs: readonly string[]): ExportConfig[] {
  const exports = specs.map(parseExportSpec);
  const seen = new Set<string>();
  for (const { name } of exports) {
    if (seen.has(name)) throw new ExportSpecError(`export "${name}" is given twice`);
    seen.add(name);
  }
  return exports;
}

/**
 * Policy when exports come from `--export` flags: every identity may use every export, read-write
 * on read-write exports and read-only on `:ro` ones.
 */
export function openPolicy(exports: readonly ExportConfig[]): AccessPolicy {
  const grants = new Map<string, Grant>(exports.map((e) => [e.name, e.readOnly ? "ro" : "rw"]));
  return { grant: (_identity, exportName) => grants.get(exportName) };
}

/** Every tunable of the client in one place, with the defaults a hard mount wants. */
export interface ClientOptions {
  /** How long one attempt of a request may take before it is re-sent. */
  attemptTimeoutMs: number;
  /** Attempts of reads and writes, which carry up to MAX_DATA_BYTES and queue behind each other. */
  dataAttemptTimeoutMs: number;
  /** Attempts of ops that may legitimately take long on the server (fsync, release, truncate). */
  slowAttemptTimeoutMs: number;
  /** Attempts on a handle's own instance before the handle is moved to another instance. */
  instanceAttempts: number;
  /** Capped exponential backoff between attempts. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Hard mount when undefined; otherwise ops fail with EIO after this long. */
  softTimeoutMs: number | undefined;
  /** Write-behind: acknowledged writes a handle may have in flight before a write waits. */
  writeBehindMaxInFlight: number;
  writeBehindMaxBytes: number;
  /**
   * Kernel attribute and entry cache lifetimes, seconds. libfuse 2's high-level API gives every name
   * its own kernel inode, so a cached size or link count on one hard link goes stale when the file
   * changes through another: attributes are not cached by default.
   */
  attrTimeoutS: number;
  entryTimeoutS: number;
  /** How long directory attributes are reused (see dir-attrs.ts). */
  dirAttrTtlMs: number;
  /** Readahead (reader.ts): block size and how many blocks a sequential reader gets ahead at most. */
  readAheadBlockBytes: number;
  readAheadMaxBlocks: number;
}

export const DEFAULT_CLIENT_OPTIONS: ClientOptions = {
  attemptTimeoutMs: 2_000,
  dataAttemptTimeoutMs: 5_000,
  slowAttemptTimeoutMs: 30_000,
  instanceAttempts: 2,
  backoffBaseMs: 50,
  backoffCapMs: 2_000,
  softTimeoutMs: undefined,
  writeBehindMaxInFlight: 8,
  writeBehindMaxBytes: 8 * 1024 * 1024,
  attrTimeoutS: 0,
  entryTimeoutS: 1,
  dirAttrTtlMs: 1_000,
  readAheadBlockBytes: 128 * 1024,
  readAheadMaxBlocks: 8,
};

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
  /**
   * How far a server's clock may be behind this client's. An attempt that got no answer is taken as
   * certainly dead only this long after its deadline (fence.ts); README: what is assumed of clocks.
   */
  clockSkewMs: number;
  /** Hard mount when undefined; otherwise ops fail with EIO after this long. */
  softTimeoutMs: number | undefined;
  /** Write-behind (writer.ts): messages in flight per file, and how long a partly gathered one waits. */
  writeBehindMaxInFlight: number;
  writeBehindIdleFlushMs: number;
  /** The mount's one memory budget for cached data, readahead, write-behind and attributes (`--cache-size`). */
  cacheSizeBytes: number;
  /**
   * Kernel attribute and entry cache lifetimes, seconds. libfuse 2's high-level API gives every name
   * its own kernel inode, so a cached size or link count on one hard link goes stale when the file
   * changes through another: attributes are not cached by default.
   */
  attrTimeoutS: number;
  entryTimeoutS: number;
  /**
   * How long cached attributes and names are trusted without a change notice (meta-cache.ts): the bound
   * on seeing changes made on a server's disk by other programs, like NFS's actimeo (`--actimeo`).
   */
  attrCacheMs: number;
  /** Entries one directory listing may have; a server that sends more is refused (EIO). */
  maxDirEntries: number;
  /** Readahead (reader.ts): blocks of the bus's message size a sequential reader gets ahead at most. */
  readAheadMaxBlocks: number;
}

export const DEFAULT_CLIENT_OPTIONS: ClientOptions = {
  attemptTimeoutMs: 2_000,
  dataAttemptTimeoutMs: 5_000,
  slowAttemptTimeoutMs: 30_000,
  instanceAttempts: 2,
  backoffBaseMs: 50,
  backoffCapMs: 2_000,
  clockSkewMs: 1_000,
  softTimeoutMs: undefined,
  writeBehindMaxInFlight: 8,
  writeBehindIdleFlushMs: 20,
  cacheSizeBytes: 256 * 1024 * 1024,
  attrTimeoutS: 0,
  entryTimeoutS: 1,
  attrCacheMs: 1_000,
  maxDirEntries: 10_000_000,
  readAheadMaxBlocks: 16,
};

import { constants } from "node:fs";

const ACCESS_MODE = constants.O_RDONLY | constants.O_WRONLY | constants.O_RDWR;

/** True when open flags ask for write access (or truncation), which needs the mutating `openw` op. */
export function opensForWrite(flags: number): boolean {
  return (flags & ACCESS_MODE) !== constants.O_RDONLY || (flags & constants.O_TRUNC) !== 0;
}

/**
 * Flags to re-open an already open file with after a failover: the file exists and must not be
 * truncated or created again, so O_CREAT, O_EXCL and O_TRUNC are removed.
 */
export function reopenFlags(flags: number): number {
  return flags & ~(constants.O_CREAT | constants.O_EXCL | constants.O_TRUNC);
}

/**
 * Flags a server honours from a client; everything else (O_NOFOLLOW, O_DIRECT...) is its own choice.
 * O_APPEND is left out on purpose: the client's kernel already places an append at its end of file and
 * sends that offset. Writing at the given offset keeps a write idempotent (a retry after a server crash
 * cannot append twice) and keeps the pieces of one large append, in flight together, in order. As with
 * NFS, appends from two clients to one file at the same moment can then overwrite each other.
 */
export const CLIENT_OPEN_FLAGS =
  ACCESS_MODE | constants.O_CREAT | constants.O_EXCL | constants.O_TRUNC | constants.O_SYNC | constants.O_DSYNC;

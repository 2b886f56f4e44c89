import { constants, ftruncate as ftruncateCb } from "node:fs";
import { promisify } from "node:util";
import { ERRNO, errnoOf } from "../protocol/index.js";
import { closeQuietly, openRaw } from "./confine.js";

const ftruncate = promisify(ftruncateCb);

/** open(2)'s O_TMPFILE (with O_DIRECTORY, as the kernel defines it); not in Node's fs.constants. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;

/**
 * The largest n in [0, Number.MAX_SAFE_INTEGER] that `accepts`, for an `accepts` that is true up to
 * some n and false beyond (a binary search: 53 calls at most). Exported for unit tests.
 */
export async function largestAccepted(accepts: (n: number) => Promise<boolean>): Promise<number> {
  let high = Number.MAX_SAFE_INTEGER;
  if (await accepts(high)) return high;
  let low = 0; // accepted (a size of 0 always is); high is not
  while (high - low > 1) {
    const middle = low + Math.floor((high - low) / 2);
    if (await accepts(middle)) low = middle;
    else high = middle;
  }
  return low;
}

/**
 * The largest size a file can have on the file system holding `dir` (its s_maxbytes, or the server's
 * RLIMIT_FSIZE if lower), which no system call reports: ftruncate of an unnamed temporary file
 * (O_TMPFILE: never visible, gone on close) answers EFBIG past it, and a sparse size costs no space.
 * Undefined when the file system cannot make such a file (no O_TMPFILE, read-only): then no limit is
 * announced and the server's answer to each write is the only check.
 */
export async function probeMaxFileSize(dir: string): Promise<number | undefined> {
  const fd = await openRaw(dir, O_TMPFILE | constants.O_RDWR, 0o600).catch(() => undefined);
  if (fd === undefined) return undefined;
  try {
    return await largestAccepted((size) =>
      ftruncate(fd, size).then(
        () => true,
        (err: unknown) => (errnoOf(err) === ERRNO.EFBIG || errnoOf(err) === ERRNO.EINVAL ? false : Promise.reject(err)),
      ),
    );
  } catch {
    return undefined;
  } finally {
    await closeQuietly(fd);
  }
}

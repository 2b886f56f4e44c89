import { ERRNO, FsError, NAME_MAX, type DirPage } from "../protocol/index.js";

/** A name a directory entry can have on Linux: 1-255 bytes, no "/" or NUL. */
function isEntryName(name: unknown): name is string {
  return typeof name === "string" && name.length > 0 && !name.includes("/") && !name.includes("\0") && Buffer.byteLength(name) <= NAME_MAX;
}

/**
 * Checks one readdir page against the offset it was asked for: it must make progress (a next offset
 * past the one asked, or the end), the listing must stay within `maxEntries`, and every entry must be
 * a name a directory can hold. Throws EIO otherwise.
 */
export function checkDirPage(page: DirPage, askedOffset: number, listedSoFar: number, maxEntries: number): void {
  if (!Array.isArray(page.entries)) throw new FsError(ERRNO.EIO!, "readdir: malformed page from the server");
  if (!page.entries.every((entry) => typeof entry === "object" && entry !== null && isEntryName(entry.name))) {
    throw new FsError(ERRNO.EIO!, "readdir: the server sent an entry that is not a valid name");
  }
  if (page.next !== undefined && !(Number.isSafeInteger(page.next) && page.next > askedOffset)) {
    throw new FsError(ERRNO.EIO!, `readdir: the server's page at offset ${askedOffset} makes no progress (next ${String(page.next)})`);
  }
  if (page.next !== undefined && page.entries.length === 0) throw new FsError(ERRNO.EIO!, "readdir: the server sent an empty page that is not the last");
  if (listedSoFar + page.entries.length > maxEntries) {
    throw new FsError(ERRNO.EIO!, `readdir: listing longer than ${maxEntries} entries: refused`);
  }
}

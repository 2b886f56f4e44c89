import { ERRNO, FsError, type DirPage } from "../protocol/index.js";

/**
 * Checks one readdir page against the offset it was asked for: it must make progress (a next offset
 * past the one asked, or the end) and the listing must stay within `maxEntries`. Throws EIO otherwise.
 */
export function checkDirPage(page: DirPage, askedOffset: number, listedSoFar: number, maxEntries: number): void {
  if (!Array.isArray(page.entries)) throw new FsError(ERRNO.EIO!, "readdir: malformed page from the server");
  if (page.next !== undefined && !(Number.isSafeInteger(page.next) && page.next > askedOffset)) {
    throw new FsError(ERRNO.EIO!, `readdir: the server's page at offset ${askedOffset} makes no progress (next ${String(page.next)})`);
  }
  if (page.next !== undefined && page.entries.length === 0) throw new FsError(ERRNO.EIO!, "readdir: the server sent an empty page that is not the last");
  if (listedSoFar + page.entries.length > maxEntries) {
    throw new FsError(ERRNO.EIO!, `readdir: listing longer than ${maxEntries} entries: refused`);
  }
}

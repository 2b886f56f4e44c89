import type { BigIntStats, Dir } from "node:fs";
import { lstat, opendir, stat } from "node:fs/promises";
import { splitTimeNs, type DirEntry, type DirPage, type Stat } from "../protocol/index.js";
import { procPath } from "./confine.js";

/** Bytes a listed entry costs in a reply besides its name: the msgpack map and its attributes. */
export const ENTRY_OVERHEAD_BYTES = 232;

/** Attributes as sent to clients, times to the nanosecond. */
export function toStat(s: BigIntStats): Stat {
  const atime = splitTimeNs(s.atimeNs);
  const mtime = splitTimeNs(s.mtimeNs);
  const ctime = splitTimeNs(s.ctimeNs);
  return {
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    size: Number(s.size),
    nlink: Number(s.nlink),
    ino: Number(s.ino),
    dev: Number(s.dev),
    rdev: Number(s.rdev),
    blksize: Number(s.blksize),
    blocks: Number(s.blocks),
    atimeMs: atime.ms,
    mtimeMs: mtime.ms,
    ctimeMs: ctime.ms,
    atimeNsec: atime.nsec,
    mtimeNsec: mtime.nsec,
    ctimeNsec: ctime.nsec,
  };
}

/**
 * A directory listing that streams from the disk page by page instead of holding every name: what one
 * open directory costs the server is one directory stream (a few KiB), however large the directory.
 * The offset of a page counts entries from the start, "." and ".." first; a client that asks for the
 * offset where the stream stands continues it, any other offset (a re-read, a seek back) restarts it.
 * Entries come with their attributes (like NFS READDIRPLUS), read through the pinned directory fd.
 */
export class DirectoryListing {
  private stream: Dir | undefined;
  /** Entries consumed from the start (including "." and ".."), i.e. the offset the stream stands at. */
  private position = 0;
  /** An entry read from the stream that did not fit the last page. */
  private carried: string | undefined;
  private busy: Promise<unknown> = Promise.resolve();

  /** `dirFd` is an O_PATH fd of the directory, owned by the caller and open while this lives. */
  constructor(private readonly dirFd: number) {}

  /** The page at `offset` of at most `maxBytes` (names and attributes). Pages of one listing run one at a time. */
  page(offset: number, maxBytes: number): Promise<DirPage> {
    const result = this.busy.then(() => this.readPage(offset, maxBytes));
    this.busy = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.busy;
    const stream = this.stream;
    this.stream = undefined;
    await stream?.close().catch(() => undefined);
  }

  private async readPage(offset: number, maxBytes: number): Promise<DirPage> {
    if (offset !== this.position) await this.seek(offset);
    const names: string[] = [];
    let bytes = 0;
    for (;;) {
      const name = await this.nextName();
      if (name === undefined) break;
      const cost = Buffer.byteLength(name) + ENTRY_OVERHEAD_BYTES;
      if (names.length > 0 && bytes + cost > maxBytes) {
        this.carried = name;
        break;
      }
      names.push(name);
      bytes += cost;
      this.position += 1;
    }
    // One lstat at a time: all of a page's hundreds at once would queue ahead of every other
    // identity's requests on libuv's thread pool (4 threads), which admission control cannot see.
    const entries: DirEntry[] = [];
    for (const name of names) entries.push(await this.entry(name));
    const end = this.carried === undefined && this.stream === undefined;
    return end ? { entries } : { entries, next: this.position };
  }

  /** The next name, "." and ".." first; undefined at the end (the stream is then closed). */
  private async nextName(): Promise<string | undefined> {
    if (this.carried !== undefined) {
      const name = this.carried;
      this.carried = undefined;
      return name;
    }
    if (this.position === 0) return ".";
    if (this.position === 1) {
      this.stream = await opendir(procPath(this.dirFd), { bufferSize: 64 });
      return "..";
    }
    if (this.stream === undefined) return undefined;
    const dirent = await this.stream.read();
    if (dirent === null) {
      await this.stream.close().catch(() => undefined);
      this.stream = undefined;
      return undefined;
    }
    return dirent.name;
  }

  /** Restarts the stream and skips to `offset`. */
  private async seek(offset: number): Promise<void> {
    await this.stream?.close().catch(() => undefined);
    this.stream = undefined;
    this.carried = undefined;
    this.position = 0;
    while (this.position < offset) {
      if ((await this.nextName()) === undefined) return;
      this.position += 1;
    }
  }

  private async entry(name: string): Promise<DirEntry> {
    if (name === "..") return { name };
    try {
      // "." through the fd's magic link (stat follows it to the directory), every other name without following.
      const bigint = { bigint: true } as const;
      return { name, stat: toStat(name === "." ? await stat(procPath(this.dirFd), bigint) : await lstat(procPath(this.dirFd, name), bigint)) };
    } catch {
      return { name }; // removed since it was listed
    }
  }
}

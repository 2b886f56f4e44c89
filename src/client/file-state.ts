import type { Stat } from "../protocol/index.js";
import { fileKey, type DataCache, type FileKey } from "./data-cache.js";
import type { ReadableFile } from "./reader.js";
import type { OpenHandle } from "./handle.js";
import type { WriteBehind } from "./writer.js";

/**
 * What the client knows of one file, keyed by (export, inode) and shared by every handle of it
 * (JuiceFS keeps the same per inode): the size and times it last saw, its cached data (in the
 * mount's DataCache under `key`), fetches in flight and write-behind.
 */
export class FileState implements ReadableFile {
  readonly key: FileKey;
  size: number;
  private mtimeMs: number;
  generation = 0;
  readonly fetching = new Map<number, Promise<Uint8Array>>();
  writer: WriteBehind<OpenHandle> | undefined;
  /** Kernel handles open on it: a file with none may be forgotten. */
  openCount = 0;

  constructor(
    exportName: string,
    readonly ino: number,
    stat: Stat,
    private readonly cache: DataCache,
  ) {
    this.key = fileKey(exportName, ino);
    this.size = stat.size;
    this.mtimeMs = stat.mtimeMs;
  }

  /**
   * Attributes fresh from a server (open, getattr, readdir): cached data is kept only while the file is
   * unchanged since (close-to-open, and appends seen by an open reader). While this client's own writes
   * are on their way, the size it shows is at least their end.
   */
  observe(stat: Stat): void {
    if (this.writer !== undefined && !this.writer.idle) {
      this.size = Math.max(stat.size, this.writer.end);
      return;
    }
    if (stat.size !== this.size || stat.mtimeMs !== this.mtimeMs) this.invalidate();
    this.size = stat.size;
    this.mtimeMs = stat.mtimeMs;
  }

  /** This client wrote [offset, offset + length): cached blocks there are stale. */
  wrote(offset: number, length: number, blockBytes: number): void {
    this.size = Math.max(this.size, offset + length);
    const first = Math.floor(offset / blockBytes);
    const last = Math.floor((offset + length - 1) / blockBytes);
    this.forgetFetching();
    this.cache.dropFile(this.key, (index) => index >= first && index <= last);
  }

  /** The file changed in ways cached data cannot follow (another client, a truncate): drop it all. */
  invalidate(size?: number): void {
    this.forgetFetching();
    this.cache.dropFile(this.key);
    if (size !== undefined) this.size = size;
  }

  private forgetFetching(): void {
    this.generation += 1;
    this.fetching.clear();
  }
}

/**
 * Files of one export by inode. Files with no open handle are kept (least recently used first out)
 * so their cached data can serve the next open if the file is unchanged by then.
 */
export class FileTable {
  private readonly files = new Map<number, FileState>();

  constructor(
    private readonly exportName: string,
    private readonly cache: DataCache,
    private readonly maxClosedFiles = 4096,
  ) {}

  get(ino: number): FileState | undefined {
    return this.files.get(ino);
  }

  /** The file of `stat`, made current with it. */
  opened(stat: Stat): FileState {
    let file = this.files.get(stat.ino);
    if (file === undefined) file = new FileState(this.exportName, stat.ino, stat, this.cache);
    else file.observe(stat);
    this.files.delete(stat.ino);
    this.files.set(stat.ino, file);
    file.openCount += 1;
    this.trim();
    return file;
  }

  closed(file: FileState): void {
    file.openCount -= 1;
    this.trim();
  }

  /** Every file's cached data is suspect (notices may have been missed). */
  invalidateAll(): void {
    for (const file of this.files.values()) file.invalidate();
  }

  private trim(): void {
    let excess = this.files.size - this.maxClosedFiles;
    for (const [ino, file] of this.files) {
      if (excess <= 0) break;
      if (file.openCount > 0 || (file.writer !== undefined && !file.writer.idle)) continue;
      file.invalidate();
      this.files.delete(ino);
      excess -= 1;
    }
  }
}

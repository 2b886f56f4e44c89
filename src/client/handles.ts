import type { ServerHandle } from "../protocol/index.js";
import type { Rpc } from "./rpc.js";
import type { ReadAhead } from "./reader.js";
import type { WriteBehind } from "./writer.js";

/** What the client keeps for each handle it gave the kernel. */
export interface OpenFile {
  readonly fh: number;
  readonly kind: "file" | "dir";
  readonly rpc: Rpc;
  /** Path inside the export, kept current through renames so a re-open finds the file. */
  path: string;
  readonly flags: number;
  server: ServerHandle;
  writer?: WriteBehind;
  reader?: ReadAhead;
  /** Set while the handle is being moved to another instance, so concurrent ops wait for one re-open. */
  remapping?: Promise<void>;
}

/**
 * Where `path` is after renaming `from` to `to`: the renamed entry itself or anything below it moves;
 * undefined when the rename does not touch it.
 */
export function pathAfterRename(path: string, from: string, to: string): string | undefined {
  if (path === from) return to;
  if (path.startsWith(from.endsWith("/") ? from : `${from}/`)) return to + path.slice(from.length);
  return undefined;
}

/** Kernel handle numbers → open files. Numbers are small and reused, as the kernel expects. */
export class HandleTable {
  private readonly files = new Map<number, OpenFile>();
  private readonly free: number[] = [];
  private nextFh = 1;

  get size(): number {
    return this.files.size;
  }

  add(entry: Omit<OpenFile, "fh">): OpenFile {
    const fh = this.free.pop() ?? this.nextFh++;
    const file: OpenFile = { ...entry, fh };
    this.files.set(fh, file);
    return file;
  }

  get(fh: number): OpenFile | undefined {
    return this.files.get(fh);
  }

  remove(fh: number): void {
    if (this.files.delete(fh)) this.free.push(fh);
  }

  /** Open files of one export whose path is `path`. */
  withPath(rpc: Rpc, path: string): OpenFile[] {
    return [...this.files.values()].filter((f) => f.rpc === rpc && f.path === path);
  }

  /** Follows a rename in every open file's path. */
  renamed(rpc: Rpc, from: string, to: string): void {
    for (const file of this.files.values()) {
      if (file.rpc !== rpc) continue;
      const moved = pathAfterRename(file.path, from, to);
      if (moved !== undefined) file.path = moved;
    }
  }

  all(): OpenFile[] {
    return [...this.files.values()];
  }
}

import { constants, fstat as fstatCb } from "node:fs";
import { promisify } from "node:util";
import type { NatsConnection } from "nats";
import { encodeNotice, noticeSubject, type Change, type OpArgs, type OpName } from "../protocol/index.js";
import type { CallContext, ExportFs } from "./export.js";

const fstat = promisify(fstatCb);

/** Inodes of the handles seen lately, so a stream of writes costs one fstat, not one per message. */
const INO_CACHE_ENTRIES = 4096;

/**
 * Publishes a change notice (protocol/notices.ts) for every successful change. The service calls it
 * before it sends the reply: NATS delivers one connection's messages in order, so every other client
 * has the notice no later than the asker has its answer.
 *
 * Changes made to the export directory by other programs are not watched (Linux has no recursive
 * watch that scales to a large tree, and inotify misses changes over NFS and the like): clients
 * revalidate what they cached after at most their attribute timeout (1 s by default), as NFS does.
 */
export class ChangeNotices {
  /** `${export}\0${handle}` → inode; handle numbers are never reused within an instance. */
  private readonly inoOfHandle = new Map<string, number>();

  constructor(private readonly nc: NatsConnection) {}

  async changed<O extends OpName>(fs: ExportFs, op: O, args: OpArgs<O>, context: CallContext): Promise<void> {
    try {
      const changes = await this.changesOf(fs, op, args, context);
      if (changes.length === 0) return;
      const subject = noticeSubject(fs.name);
      this.nc.publish(subject, encodeNotice({ client: context.client, changes }, subject));
    } catch {
      // A handle released meanwhile, or a closed connection: clients revalidate within their timeout.
    }
  }

  private async changesOf<O extends OpName>(fs: ExportFs, op: O, args: OpArgs<O>, context: CallContext): Promise<Change[]> {
    const a = args as Record<string, unknown>;
    switch (op) {
      case "write":
      case "ftruncate":
      case "fallocate":
        return [{ ino: await this.inoOf(fs, a.handle as number, context) }];
      case "openw":
        // Opening with O_TRUNC empties the file: what others cached of it is stale.
        return ((a.flags as number) & constants.O_TRUNC) !== 0 ? [{ path: a.path as string }] : [];
      case "rename":
        return [
          { path: a.from as string, tree: true },
          { path: a.to as string, tree: true },
        ];
      case "link":
        return [{ path: a.from as string }, { path: a.to as string }];
      case "rmdir":
        return [{ path: a.path as string, tree: true }];
      case "create":
      case "truncate":
      case "unlink":
      case "mkdir":
      case "symlink":
      case "mknod":
      case "chmod":
      case "chown":
      case "utimens":
      case "setxattr":
      case "removexattr":
        return [{ path: a.path as string }];
      default:
        // fsync, and open for writing without O_TRUNC: nothing another client has cached changes.
        return [];
    }
  }

  private async inoOf(fs: ExportFs, handle: number, context: CallContext): Promise<number> {
    const key = `${fs.name}\0${handle}`;
    const known = this.inoOfHandle.get(key);
    if (known !== undefined) return known;
    const ino = await fs.handles.use(handle, "file", context.identity, async (entry) => (await fstat(entry.fd)).ino);
    if (this.inoOfHandle.size >= INO_CACHE_ENTRIES) this.inoOfHandle.delete(this.inoOfHandle.keys().next().value!);
    this.inoOfHandle.set(key, ino);
    return ino;
  }
}

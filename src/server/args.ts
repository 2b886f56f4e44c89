import { z } from "zod";
import { MAX_DATA_BYTES, PATH_MAX, type OpArgs, type OpName } from "../protocol/index.js";

/**
 * Shape checks of every op's arguments, so that handlers only ever see well-typed values.
 * Paths are only checked for type and length here; confine.ts decides what they may name.
 */
const path = z.string().max(PATH_MAX * 4);
const handle = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const u32 = z.number().int().min(0).max(0xffffffff);
const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const mode = z.number().int().min(0).max(0o177777);
/** chown ids: -1 (or 2^32-1) means unchanged. */
const ownerId = z.number().int().min(-1).max(0xffffffff);
/** A time utimens sets; seconds within what a 64-bit time_t and a double both hold exactly. */
const setTime = z.union([
  z.object({ sec: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER), nsec: z.number().int().min(0).max(999_999_999) }),
  z.literal("now"),
  z.literal("omit"),
]);
const bytes = z.instanceof(Uint8Array).refine((data) => data.byteLength <= MAX_DATA_BYTES, "data too large");
const xattrName = z.string().max(1024);

/** The uid and gid of the calling process: who asks, and whom a new object is for. */
const caller = z.object({ uid: u32, gid: u32 }).optional();
const owner = caller;

const withPath = z.object({ path, caller });
const withHandle = z.object({ handle });
const twoPaths = z.object({ from: path, to: path, caller });

export const ARG_SCHEMAS: { [O in OpName]: z.ZodType<OpArgs<O>> } = {
  getattr: withPath,
  fgetattr: withHandle,
  access: z.object({ path, mode: z.number().int().min(0).max(7), caller }),
  statfs: withPath,
  readlink: withPath,
  getxattr: z.object({ path, name: xattrName, caller }),
  listxattr: withPath,
  opendir: withPath,
  readdir: z.object({ handle, offset }),
  releasedir: withHandle,
  open: z.object({ path, flags: u32, caller }),
  openw: z.object({ path, flags: u32, caller }),
  create: z.object({ path, flags: u32, mode, owner }),
  read: z.object({ handle, offset, length: z.number().int().min(0).max(MAX_DATA_BYTES) }),
  write: z.object({ handle, offset, data: bytes }),
  fsync: z.object({ handle, datasync: z.boolean() }),
  fsyncdir: z.object({ handle, datasync: z.boolean() }),
  release: withHandle,
  renew: withHandle,
  ftruncate: z.object({ handle, size: offset }),
  fallocate: z.object({ handle, mode: u32, offset, length: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
  truncate: z.object({ path, size: offset, caller }),
  unlink: withPath,
  rename: twoPaths,
  mkdir: z.object({ path, mode, owner }),
  rmdir: withPath,
  symlink: z.object({ target: path, path, owner }),
  link: twoPaths,
  mknod: z.object({ path, mode, rdev: u32, owner }),
  chmod: z.object({ path, mode, caller }),
  chown: z.object({ path, uid: ownerId, gid: ownerId, caller }),
  utimens: z.object({ path, atime: setTime, mtime: setTime, caller }),
  setxattr: z.object({ path, name: xattrName, value: bytes, flags: u32, caller }),
  removexattr: z.object({ path, name: xattrName, caller }),
};

/** The op's arguments with their types checked, or undefined and a one-line reason. */
export function parseArgs<O extends OpName>(op: O, args: unknown): { ok: true; args: OpArgs<O> } | { ok: false; reason: string } {
  const parsed = ARG_SCHEMAS[op].safeParse(args);
  if (parsed.success) return { ok: true, args: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, reason: `${op}: ${issue?.path.join(".") || "args"}: ${issue?.message ?? "invalid"}` };
}

/**
 * The one table of operations. Client calls, server dispatch, NATS permissions and metric labels are
 * all derived from it: adding an op is adding one entry here (plus its handler on each side).
 */
export interface OpSpec {
  /** Changes the export's contents or metadata: refused for read-only grants and exports. */
  readonly mutating: boolean;
  /** Safe to repeat blindly. Non-idempotent replies are kept in the server's duplicate-request cache. */
  readonly idempotent: boolean;
  /** Carries a server handle and goes to the instance that owns it. */
  readonly handleBound: boolean;
  /**
   * Applied late, after a later op, it would undo that op (a write, a truncate, a rename...). An attempt
   * of a fenced op that got no answer must be past its deadline before the call is re-sent elsewhere
   * (client/fence.ts). Every mutating op is, except fsync, which a late execution cannot harm.
   */
  readonly fenced: boolean;
}

const op = (mutating: boolean, idempotent: boolean, handleBound: boolean, fenced = mutating): OpSpec => ({
  mutating,
  idempotent,
  handleBound,
  fenced,
});

export const OPS = {
  getattr: op(false, true, false),
  fgetattr: op(false, true, true),
  access: op(false, true, false),
  statfs: op(false, true, false),
  readlink: op(false, true, false),
  getxattr: op(false, true, false),
  listxattr: op(false, true, false),
  opendir: op(false, true, false),
  readdir: op(false, true, true),
  releasedir: op(false, true, true),
  open: op(false, true, false),
  read: op(false, true, true),
  release: op(false, true, true),
  // keeps the handles this client holds on one instance from being reclaimed as a dead client's
  renew: op(false, true, true),
  // open for writing, create and the ops below change data or metadata
  openw: op(true, true, false),
  create: op(true, false, false),
  write: op(true, true, true),
  fsync: op(true, true, true, false),
  // makes a directory's entries durable; allowed to read-only grants, as fsync(2) of a directory opened read-only is
  fsyncdir: op(false, true, true),
  ftruncate: op(true, true, true),
  fallocate: op(true, true, true),
  truncate: op(true, true, false),
  unlink: op(true, false, false),
  rename: op(true, false, false),
  mkdir: op(true, false, false),
  rmdir: op(true, false, false),
  symlink: op(true, false, false),
  link: op(true, false, false),
  mknod: op(true, false, false),
  chmod: op(true, true, false),
  chown: op(true, true, false),
  utimens: op(true, true, false),
  setxattr: op(true, true, false),
  removexattr: op(true, false, false),
} as const satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;

export const OP_NAMES = Object.keys(OPS) as OpName[];

export function isOpName(name: string): name is OpName {
  return Object.hasOwn(OPS, name);
}

export function opsWhere(predicate: (spec: OpSpec) => boolean): OpName[] {
  return OP_NAMES.filter((name) => predicate(OPS[name]));
}

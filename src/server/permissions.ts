import { constants } from "node:fs";
import type { Owner, SetTime } from "../protocol/index.js";
import type { ExportConfig } from "./config.js";

/**
 * Linux's permission rules, as pure functions of a credential and fstat results, so that a squashed
 * request gets exactly the rights its user would have on a local disk although the server runs as
 * root. Each check returns undefined when the kernel would allow the call, or the refusal it would
 * give. POSIX ACLs, capabilities other than root's and file attributes (immutable, append-only) are
 * not evaluated: an export's files are judged by their mode bits alone.
 */

/** Whom a request runs as. `groups` are the supplementary groups (the primary gid need not be repeated). */
export interface Credential {
  uid: number;
  gid: number;
  groups: readonly number[];
}

/** The fields of an fstat result the rules read (a node:fs Stats fits). */
export interface Inode {
  mode: number;
  uid: number;
  gid: number;
}

/** The masks of access(2) and the kernel's inode_permission. */
export const MAY_EXEC = constants.X_OK;
export const MAY_WRITE = constants.W_OK;
export const MAY_READ = constants.R_OK;

export interface Refusal {
  code: "EACCES" | "EPERM" | "ENODATA";
  reason: string;
}

/** Mode bits Node's fs.constants lacks. */
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
const S_IXUGO = 0o111;
const ROOT_UID = 0;

function refuse(code: Refusal["code"], reason: string): Refusal {
  return { code, reason };
}

function isType(inode: Inode, type: number): boolean {
  return (inode.mode & constants.S_IFMT) === type;
}

export function isRoot(credential: Credential): boolean {
  return credential.uid === ROOT_UID;
}

export function inGroup(credential: Credential, gid: number): boolean {
  return credential.gid === gid || credential.groups.includes(gid);
}

function ownsOrRoot(credential: Credential, inode: Inode): boolean {
  return isRoot(credential) || credential.uid === inode.uid;
}

/**
 * The credential a request runs as on this export, or undefined when the export trusts its clients
 * (squash "none": the server acts with its own rights and the client's kernel checks modes).
 * "all": everyone is the anonymous user. "root": uid 0 becomes anonUid and gid 0 anonGid, as NFS's
 * root_squash; a request that does not say who its caller is counts as anonymous. The server never
 * learns a caller's supplementary groups, so a squashed credential has none.
 */
export function credentialFor(config: Pick<ExportConfig, "squash" | "anonUid" | "anonGid">, caller: Owner | undefined): Credential | undefined {
  const { squash, anonUid, anonGid } = config;
  if (squash === "none") return undefined;
  if (squash === "all" || caller === undefined) return { uid: anonUid, gid: anonGid, groups: [] };
  return { uid: caller.uid === ROOT_UID ? anonUid : caller.uid, gid: caller.gid === 0 ? anonGid : caller.gid, groups: [] };
}

/**
 * Who a new object belongs to: the credential's ids, or on a trusting export the caller's (undefined
 * when the client did not say: the server's own). As on Linux, an object made in a set-group-ID
 * directory takes that directory's group.
 */
export function newObjectOwner(credential: Credential | undefined, caller: Owner | undefined, parent: Inode): Owner | undefined {
  const ids = credential ?? caller;
  if (ids === undefined) return undefined;
  return { uid: ids.uid, gid: (parent.mode & S_ISGID) !== 0 ? parent.gid : ids.gid };
}

/**
 * generic_permission(): the owner class if the caller owns the inode, else the group class if it is in
 * the inode's group, else other. Root may read and write anything and search any directory, and may
 * execute a file only when some execute bit is set.
 */
export function mayAccess(credential: Credential, inode: Inode, want: number): boolean {
  const mask = want & (MAY_READ | MAY_WRITE | MAY_EXEC);
  if (isRoot(credential)) {
    return (mask & MAY_EXEC) === 0 || isType(inode, constants.S_IFDIR) || (inode.mode & S_IXUGO) !== 0;
  }
  const classBits = credential.uid === inode.uid ? inode.mode >> 6 : inGroup(credential, inode.gid) ? inode.mode >> 3 : inode.mode;
  return (mask & ~classBits & 0o7) === 0;
}

function describeWant(want: number): string {
  return [want & MAY_READ ? "read" : "", want & MAY_WRITE ? "write" : "", want & MAY_EXEC ? "execute/search" : ""].filter(Boolean).join("+");
}

export function checkAccess(credential: Credential, inode: Inode, want: number): Refusal | undefined {
  return mayAccess(credential, inode, want) ? undefined : refuse("EACCES", `no ${describeWant(want)} permission`);
}

/** Looking a name up in a directory needs search (execute) permission on it. */
export function checkSearch(credential: Credential, directory: Inode): Refusal | undefined {
  return checkAccess(credential, directory, MAY_EXEC);
}

/** open(2) of an existing object: read for O_RDONLY/O_RDWR, write for O_WRONLY/O_RDWR and O_TRUNC. */
export function checkOpen(credential: Credential, inode: Inode, flags: number): Refusal | undefined {
  const accessMode = flags & (constants.O_RDONLY | constants.O_WRONLY | constants.O_RDWR);
  let want = 0;
  if (accessMode === constants.O_RDONLY || accessMode === constants.O_RDWR) want |= MAY_READ;
  if (accessMode === constants.O_WRONLY || accessMode === constants.O_RDWR || (flags & constants.O_TRUNC) !== 0) want |= MAY_WRITE;
  return checkAccess(credential, inode, want);
}

/** Adding a name to a directory (create, mkdir, symlink, mknod, link target, rename target). */
export function checkCreateIn(credential: Credential, parent: Inode): Refusal | undefined {
  return checkAccess(credential, parent, MAY_WRITE | MAY_EXEC);
}

/**
 * may_delete(): removing `victim`'s name from `parent` needs write and search on the parent and, in
 * a sticky directory (/tmp), owning the victim or the directory.
 */
export function checkDelete(credential: Credential, parent: Inode, victim: Inode): Refusal | undefined {
  const denied = checkCreateIn(credential, parent);
  if (denied) return denied;
  const sticky = (parent.mode & S_ISVTX) !== 0;
  if (sticky && !ownsOrRoot(credential, victim) && credential.uid !== parent.uid) {
    return refuse("EPERM", "sticky directory: only the owner of the entry or the directory may remove it");
  }
  return undefined;
}

export interface RenameInodes {
  fromParent: Inode;
  source: Inode;
  toParent: Inode;
  /** The entry the rename replaces, if the target name exists. */
  target?: Inode;
  sameParent: boolean;
}

/**
 * vfs_rename(): the source is deleted from its directory and the target added to (or replaced in)
 * its own; a directory that changes parent must be writable itself, for its "..".
 */
export function checkRename(credential: Credential, inodes: RenameInodes): Refusal | undefined {
  const { fromParent, source, toParent, target, sameParent } = inodes;
  return (
    checkDelete(credential, fromParent, source) ??
    (target ? checkDelete(credential, toParent, target) : checkCreateIn(credential, toParent)) ??
    (isType(source, constants.S_IFDIR) && !sameParent ? checkAccess(credential, source, MAY_WRITE) : undefined)
  );
}

/**
 * link(2) with fs.protected_hardlinks=1 (every distribution's default): besides write on the target
 * directory, a non-owner may link only a regular file it can read and write that is neither
 * set-user-ID nor executable set-group-ID.
 */
export function checkLink(credential: Credential, source: Inode, toParent: Inode): Refusal | undefined {
  const denied = checkCreateIn(credential, toParent);
  if (denied) return denied;
  if (ownsOrRoot(credential, source)) return undefined;
  const setuid = (source.mode & S_ISUID) !== 0;
  const setgidExec = (source.mode & (S_ISGID | constants.S_IXGRP)) === (S_ISGID | constants.S_IXGRP);
  if (!isType(source, constants.S_IFREG) || setuid || setgidExec || !mayAccess(credential, source, MAY_READ | MAY_WRITE)) {
    return refuse("EPERM", "protected hardlinks: only the owner may link this file");
  }
  return undefined;
}

/** chmod(2) is the owner's (or root's). */
export function checkChmod(credential: Credential, inode: Inode): Refusal | undefined {
  return ownsOrRoot(credential, inode) ? undefined : refuse("EPERM", "only the owner may change the mode");
}

/** The mode chmod really sets: S_ISGID is dropped when a non-root caller is not in the file's group. */
export function chmodMode(credential: Credential, inode: Inode, requested: number): number {
  const mode = requested & 0o7777;
  return isRoot(credential) || inGroup(credential, inode.gid) ? mode : mode & ~S_ISGID;
}

/**
 * chown(2): only root gives a file away; its owner may change the group to one it is in. An id of -1
 * leaves that id unchanged, and "changing" an id to its current value is allowed to the owner.
 */
export function checkChown(credential: Credential, inode: Inode, uid: number, gid: number): Refusal | undefined {
  if (isRoot(credential)) return undefined;
  const owner = credential.uid === inode.uid;
  if (uid !== -1 && !(owner && uid === inode.uid)) return refuse("EPERM", "only root may change the owner");
  if (gid !== -1 && !(owner && (gid === inode.gid || inGroup(credential, gid)))) {
    return refuse("EPERM", "only the owner may change the group, and only to a group it is in");
  }
  return undefined;
}

export interface TimesToSet {
  atime: SetTime;
  mtime: SetTime;
}

/**
 * utimensat(2) (the kernel's vfs_utimes and setattr_prepare): leaving both times as they are needs
 * nothing; setting both to now needs ownership or write permission; anything else (an explicit time,
 * or now for one time only) needs ownership.
 */
export function checkUtimens(credential: Credential, inode: Inode, requested: TimesToSet): Refusal | undefined {
  const { atime, mtime } = requested;
  if ((atime === "omit" && mtime === "omit") || ownsOrRoot(credential, inode)) return undefined;
  if (atime === "now" && mtime === "now") return checkAccess(credential, inode, MAY_WRITE);
  return refuse("EPERM", "only the owner may set times other than now");
}

/**
 * mknod(2) of a block or character device: only on an export whose policy allows device nodes
 * (`devices: true`), and only for a caller the export trusts (squash "none": a squashed caller is
 * never root, and only root may make device nodes).
 */
export function checkDeviceNode(devicesAllowed: boolean, credential: Credential | undefined): Refusal | undefined {
  if (!devicesAllowed) return refuse("EPERM", "device nodes are not allowed on this export (policy: devices)");
  if (credential !== undefined) return refuse("EPERM", "device nodes need an export with squash none");
  return undefined;
}

/** truncate(2) by path needs write permission. */
export function checkTruncate(credential: Credential, inode: Inode): Refusal | undefined {
  return checkAccess(credential, inode, MAY_WRITE);
}

/**
 * xattr_permission() for user.* names: only regular files and directories carry them (writing
 * elsewhere is EPERM, reading ENODATA); in a sticky directory only the owner may write them; otherwise
 * reading needs read permission and writing write permission. Listing names needs nothing.
 */
export function checkUserXattr(credential: Credential, inode: Inode, want: typeof MAY_READ | typeof MAY_WRITE): Refusal | undefined {
  const writing = want === MAY_WRITE;
  if (!isType(inode, constants.S_IFREG) && !isType(inode, constants.S_IFDIR)) {
    return writing ? refuse("EPERM", "user xattrs only on regular files and directories") : refuse("ENODATA", "no such attribute");
  }
  if (writing && isType(inode, constants.S_IFDIR) && (inode.mode & S_ISVTX) !== 0 && !ownsOrRoot(credential, inode)) {
    return refuse("EPERM", "sticky directory: only its owner may change its user xattrs");
  }
  return checkAccess(credential, inode, want);
}

import assert from "node:assert/strict";
import { constants } from "node:fs";
import { describe, it } from "node:test";
import {
  MAY_EXEC,
  MAY_READ,
  MAY_WRITE,
  S_ISGID,
  S_ISUID,
  S_ISVTX,
  checkChmod,
  checkChown,
  checkCreateIn,
  checkDeviceNode,
  checkDelete,
  checkLink,
  checkOpen,
  checkRename,
  checkSearch,
  checkUserXattr,
  checkUtimens,
  chmodMode,
  credentialFor,
  mayAccess,
  newObjectOwner,
  type Credential,
  type Inode,
} from "../src/server/permissions.js";

const { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC } = constants;

const root: Credential = { uid: 0, gid: 0, groups: [] };
const anon: Credential = { uid: 65534, gid: 65534, groups: [] };
const alice: Credential = { uid: 1000, gid: 1000, groups: [50] };

const file = (mode: number, uid = 0, gid = 0): Inode => ({ mode: S_IFREG | mode, uid, gid });
const dir = (mode: number, uid = 0, gid = 0): Inode => ({ mode: S_IFDIR | mode, uid, gid });
const code = (refusal: { code: string } | undefined) => refusal?.code ?? "ok";

describe("credentialFor", () => {
  const anonIds = { anonUid: 65534, anonGid: 65534 };
  it("squash none trusts the client: no credential to check", () => {
    assert.equal(credentialFor({ squash: "none", ...anonIds }, { uid: 0, gid: 0 }), undefined);
    assert.equal(credentialFor({ squash: "none", ...anonIds }, undefined), undefined);
  });
  it("squash all: everyone is the anonymous user", () => {
    for (const caller of [{ uid: 0, gid: 0 }, { uid: 1000, gid: 1000 }, undefined]) {
      assert.deepEqual(credentialFor({ squash: "all", ...anonIds }, caller), anon);
    }
  });
  it("squash root: root's ids become anon, others stay, an unnamed caller is anonymous", () => {
    const config = { squash: "root", anonUid: 99, anonGid: 98 } as const;
    assert.deepEqual(credentialFor(config, { uid: 0, gid: 0 }), { uid: 99, gid: 98, groups: [] });
    assert.deepEqual(credentialFor(config, { uid: 1000, gid: 0 }), { uid: 1000, gid: 98, groups: [] });
    assert.deepEqual(credentialFor(config, { uid: 1000, gid: 1000 }), { uid: 1000, gid: 1000, groups: [] });
    assert.deepEqual(credentialFor(config, undefined), { uid: 99, gid: 98, groups: [] });
  });
});

describe("newObjectOwner", () => {
  it("is the credential's ids, or the caller's on a trusting export, or the server's own", () => {
    assert.deepEqual(newObjectOwner(anon, { uid: 0, gid: 0 }, dir(0o777)), { uid: 65534, gid: 65534 });
    assert.deepEqual(newObjectOwner(undefined, { uid: 1000, gid: 1000 }, dir(0o755)), { uid: 1000, gid: 1000 });
    assert.equal(newObjectOwner(undefined, undefined, dir(0o755)), undefined);
  });
  it("takes the group of a set-group-ID parent", () => {
    assert.deepEqual(newObjectOwner(anon, undefined, dir(S_ISGID | 0o2777, 0, 50)), { uid: 65534, gid: 50 });
    assert.deepEqual(newObjectOwner(undefined, { uid: 1000, gid: 1000 }, dir(S_ISGID | 0o775, 0, 50)), { uid: 1000, gid: 50 });
  });
});

describe("mayAccess (mode bits)", () => {
  it("uses the owner class alone for the owner, even when group or other would allow more", () => {
    const f = file(0o077, 1000, 1000);
    assert.equal(mayAccess(alice, f, MAY_READ), false);
    assert.equal(mayAccess({ uid: 1001, gid: 1000, groups: [] }, f, MAY_READ | MAY_WRITE | MAY_EXEC), true);
  });
  it("uses the group class for the primary and supplementary groups, else other", () => {
    const f = file(0o640, 0, 50);
    assert.equal(mayAccess(alice, f, MAY_READ), true, "supplementary group 50");
    assert.equal(mayAccess(alice, f, MAY_WRITE), false);
    assert.equal(mayAccess(anon, f, MAY_READ), false);
    assert.equal(mayAccess(anon, file(0o604), MAY_READ), true);
  });
  it("root reads and writes anything, searches any directory, executes only what has an x bit", () => {
    assert.equal(mayAccess(root, file(0o000, 1000), MAY_READ | MAY_WRITE), true);
    assert.equal(mayAccess(root, dir(0o000, 1000), MAY_EXEC), true);
    assert.equal(mayAccess(root, file(0o600, 1000), MAY_EXEC), false);
    assert.equal(mayAccess(root, file(0o601, 1000), MAY_EXEC), true);
  });
  it("searching a directory needs x in the caller's class", () => {
    assert.equal(code(checkSearch(anon, dir(0o750))), "EACCES");
    assert.equal(code(checkSearch(anon, dir(0o751))), "ok");
  });
});

describe("checkOpen", () => {
  const secret = file(0o600);
  it("asks read for O_RDONLY, write for O_WRONLY, both for O_RDWR, write for O_TRUNC", () => {
    assert.equal(code(checkOpen(anon, secret, O_RDONLY)), "EACCES");
    assert.equal(code(checkOpen(anon, secret, O_WRONLY)), "EACCES");
    assert.equal(code(checkOpen(anon, file(0o644), O_RDONLY)), "ok");
    assert.equal(code(checkOpen(anon, file(0o644), O_RDWR)), "EACCES");
    assert.equal(code(checkOpen(anon, file(0o644), O_RDONLY | O_TRUNC)), "EACCES");
    assert.equal(code(checkOpen(anon, file(0o602), O_WRONLY | O_TRUNC)), "ok");
    assert.equal(code(checkOpen(root, secret, O_RDWR)), "ok");
  });
});

describe("directory entries", () => {
  it("creating needs write and search on the parent", () => {
    assert.equal(code(checkCreateIn(anon, dir(0o755))), "EACCES");
    assert.equal(code(checkCreateIn(anon, dir(0o776))), "EACCES", "write without search");
    assert.equal(code(checkCreateIn(anon, dir(0o777))), "ok");
  });
  it("removing honours the sticky bit: only the entry's or directory's owner, or root", () => {
    const tmp = dir(S_ISVTX | 0o777);
    assert.equal(code(checkDelete(anon, tmp, file(0o644, 1000))), "EPERM");
    assert.equal(code(checkDelete(alice, tmp, file(0o644, 1000))), "ok");
    assert.equal(code(checkDelete(anon, dir(S_ISVTX | 0o777, 65534), file(0o644, 1000))), "ok", "owner of the directory");
    assert.equal(code(checkDelete(root, tmp, file(0o644, 1000))), "ok");
    assert.equal(code(checkDelete(anon, dir(0o777), file(0o000))), "ok", "no sticky bit: the file's own mode does not matter");
  });
  it("rename checks both directories, a replaced target and a directory moving to another parent", () => {
    const open = dir(0o777);
    assert.equal(code(checkRename(anon, { fromParent: dir(0o755), source: file(0o644, 65534), toParent: open, sameParent: false })), "EACCES");
    assert.equal(code(checkRename(anon, { fromParent: open, source: file(0o644, 65534), toParent: dir(0o755), sameParent: false })), "EACCES");
    const tmp = dir(S_ISVTX | 0o777);
    assert.equal(code(checkRename(anon, { fromParent: open, source: file(0o644, 65534), toParent: tmp, target: file(0o644, 0), sameParent: false })), "EPERM");
    assert.equal(code(checkRename(anon, { fromParent: open, source: dir(0o555, 65534), toParent: open, sameParent: false })), "EACCES");
    assert.equal(code(checkRename(anon, { fromParent: open, source: dir(0o555, 65534), toParent: open, sameParent: true })), "ok");
    assert.equal(code(checkRename(anon, { fromParent: open, source: file(0o644, 0), toParent: open, target: file(0o600, 0), sameParent: true })), "ok");
  });
  it("link follows protected_hardlinks for non-owners", () => {
    const open = dir(0o777);
    assert.equal(code(checkLink(anon, file(0o600), open)), "EPERM", "cannot read and write it");
    assert.equal(code(checkLink(anon, file(0o666), open)), "ok");
    assert.equal(code(checkLink(anon, file(S_ISUID | 0o777), open)), "EPERM", "set-user-ID");
    assert.equal(code(checkLink(anon, file(S_ISGID | 0o777), open)), "EPERM", "executable set-group-ID");
    assert.equal(code(checkLink(anon, file(S_ISGID | 0o666), open)), "ok", "set-group-ID without group x is mandatory locking, not privilege");
    assert.equal(code(checkLink(anon, { mode: S_IFIFO | 0o666, uid: 0, gid: 0 }, open)), "EPERM");
    assert.equal(code(checkLink(anon, file(0o600, 65534), open)), "ok", "its owner");
    assert.equal(code(checkLink(anon, file(0o666), dir(0o755))), "EACCES");
  });
});

describe("checkChmod and chmodMode", () => {
  it("only the owner or root may chmod", () => {
    assert.equal(code(checkChmod(anon, file(0o755))), "EPERM");
    assert.equal(code(checkChmod(anon, file(0o777))), "EPERM", "write permission is not enough");
    assert.equal(code(checkChmod(anon, file(0o600, 65534))), "ok");
    assert.equal(code(checkChmod(root, file(0o600, 1000))), "ok");
  });
  it("drops S_ISGID when the caller is not in the file's group, keeps S_ISUID for the owner", () => {
    assert.equal(chmodMode(alice, file(0o644, 1000, 2000), 0o6755), 0o4755);
    assert.equal(chmodMode(alice, file(0o644, 1000, 50), 0o6755), 0o6755);
    assert.equal(chmodMode(root, file(0o644, 1000, 2000), 0o6755), 0o6755);
    assert.equal(chmodMode(alice, file(0o644, 1000, 1000), S_IFREG | 0o1777), 0o1777, "type bits are not mode bits");
  });
});

describe("checkChown", () => {
  const owned = file(0o644, 1000, 1000);
  it("root may give anything to anyone", () => {
    assert.equal(code(checkChown(root, owned, 0, 0)), "ok");
  });
  it("nobody else may change the owner, not even the owner", () => {
    assert.equal(code(checkChown(alice, owned, 1001, -1)), "EPERM");
    assert.equal(code(checkChown(anon, file(0o644), 1000, -1)), "EPERM");
    assert.equal(code(checkChown(anon, file(0o644), 65534, 65534)), "EPERM", "taking a file is changing its owner");
  });
  it("the owner may set the group to one of its groups, or keep ids as they are", () => {
    assert.equal(code(checkChown(alice, owned, -1, 50)), "ok");
    assert.equal(code(checkChown(alice, owned, 1000, 1000)), "ok");
    assert.equal(code(checkChown(alice, owned, -1, 0)), "EPERM");
    assert.equal(code(checkChown(anon, file(0o644, 0, 65534), -1, 65534)), "EPERM", "not the owner, even to its own group");
    assert.equal(code(checkChown(anon, file(0o644), -1, -1)), "ok", "changes nothing");
  });
});

describe("checkUtimens", () => {
  const at = { sec: 5, nsec: 123_456_789 };
  const writable = file(0o666);
  it("the owner may set any time", () => {
    assert.equal(code(checkUtimens(anon, file(0o600, 65534), { atime: at, mtime: at })), "ok");
  });
  it("a writer may set both times to now; anything else is the owner's", () => {
    assert.equal(code(checkUtimens(anon, writable, { atime: "now", mtime: "now" })), "ok");
    assert.equal(code(checkUtimens(anon, writable, { atime: "omit", mtime: "now" })), "EPERM", "now for one time only is an explicit change");
    assert.equal(code(checkUtimens(anon, writable, { atime: "now", mtime: at })), "EPERM");
    assert.equal(code(checkUtimens(anon, writable, { atime: at, mtime: "omit" })), "EPERM");
  });
  it("omitting both times needs nothing", () => {
    assert.equal(code(checkUtimens(anon, file(0o600), { atime: "omit", mtime: "omit" })), "ok");
  });
  it("setting now without write permission is EACCES", () => {
    assert.equal(code(checkUtimens(anon, file(0o644), { atime: "now", mtime: "now" })), "EACCES");
  });
});

describe("checkDeviceNode", () => {
  const trusted = undefined;
  it("needs the export's devices policy and a trusted (unsquashed) caller", () => {
    assert.equal(code(checkDeviceNode(true, trusted)), "ok");
    assert.equal(code(checkDeviceNode(false, trusted)), "EPERM");
    assert.equal(code(checkDeviceNode(true, anon)), "EPERM");
  });
});

describe("checkUserXattr", () => {
  it("reading needs read, writing needs write", () => {
    assert.equal(code(checkUserXattr(anon, file(0o644), MAY_READ)), "ok");
    assert.equal(code(checkUserXattr(anon, file(0o640), MAY_READ)), "EACCES");
    assert.equal(code(checkUserXattr(anon, file(0o644), MAY_WRITE)), "EACCES");
    assert.equal(code(checkUserXattr(anon, file(0o666), MAY_WRITE)), "ok");
  });
  it("only regular files and directories carry them", () => {
    const link: Inode = { mode: S_IFLNK | 0o777, uid: 0, gid: 0 };
    assert.equal(code(checkUserXattr(anon, link, MAY_WRITE)), "EPERM");
    assert.equal(code(checkUserXattr(anon, link, MAY_READ)), "ENODATA");
  });
  it("a sticky directory's are its owner's to change", () => {
    assert.equal(code(checkUserXattr(anon, dir(S_ISVTX | 0o777), MAY_WRITE)), "EPERM");
    assert.equal(code(checkUserXattr(anon, dir(S_ISVTX | 0o777, 65534), MAY_WRITE)), "ok");
    assert.equal(code(checkUserXattr(anon, dir(0o777), MAY_WRITE)), "ok");
  });
});

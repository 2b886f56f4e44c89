export { OPS, OP_NAMES, isOpName, opsWhere, type OpName, type OpSpec } from "./ops.js";
export {
  DISCOVERY_SUBSCRIPTION,
  SUBJECT_ROOT,
  assertToken,
  discoverySubject,
  isInboxOf,
  parseDiscoverySubject,
  inboxPrefix,
  isToken,
  parseRequestSubject,
  permissionSubjects,
  queueGroup,
  requestSubject,
  serverSubscriptions,
  type ParsedSubject,
} from "./subjects.js";
export { DamagedFrameError, DecodeError, MisdirectedReplyError, SEAL_BYTES, decodeDiscoveryReply, decodeReply, decodeRequest, encodeDiscoveryReply, encodeReply, encodeRequest, sealFrame } from "./codec.js";
export { ERRNO, FsError, errnoClass, errnoName, errnoOf, fsError } from "./errno.js";
export { RequestIds, randomId } from "./ids.js";
export { CLIENT_OPEN_FLAGS, opensForWrite, reopenFlags } from "./flags.js";
export {
  MAX_DATA_BYTES,
  NAME_MAX,
  PATH_MAX,
  XATTR_NAMESPACE,
  type DirEntry,
  type DiscoveryReply,
  type DirPage,
  type OpenedHandle,
  type OpArgs,
  type Owner,
  type OpResult,
  type OpTypes,
  type Reply,
  type Request,
  type ServerHandle,
  type SetTime,
  type Stat,
  type StatFs,
} from "./messages.js";
export { decodeNotice, encodeNotice, noticeSubject, type Change, type ChangeNotice } from "./notices.js";
export { splitTimeNs, statTimespec } from "./times.js";

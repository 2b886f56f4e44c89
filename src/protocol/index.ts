export { OPS, OP_NAMES, isOpName, opsWhere, type OpName, type OpSpec } from "./ops.js";
export {
  SUBJECT_ROOT,
  assertToken,
  inboxPrefix,
  isToken,
  parseRequestSubject,
  permissionSubjects,
  queueGroup,
  requestSubject,
  serverSubscriptions,
  type ParsedSubject,
} from "./subjects.js";
export { DamagedFrameError, DecodeError, SEAL_BYTES, decodeReply, decodeRequest, encodeReply, encodeRequest, sealFrame } from "./codec.js";
export { ERRNO, FsError, errnoClass, errnoName, errnoOf, fsError } from "./errno.js";
export { RequestIds, randomId } from "./ids.js";
export { CLIENT_OPEN_FLAGS, opensForWrite, reopenFlags } from "./flags.js";
export {
  MAX_DATA_BYTES,
  NAME_MAX,
  PATH_MAX,
  XATTR_NAMESPACE,
  type DirPage,
  type OpArgs,
  type Owner,
  type OpResult,
  type OpTypes,
  type Reply,
  type Request,
  type ServerHandle,
  type Stat,
  type StatFs,
} from "./messages.js";

/** Name of the NATS micro-service every server registers, so clients can discover exports. */
export const SERVICE_NAME = "natsfs";

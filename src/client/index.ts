export { mountExports, type MountRequest, type MountedExports } from "./session.js";
export { discoverExports } from "./discovery.js";
export { DEFAULT_CLIENT_OPTIONS, type ClientOptions } from "./options.js";
export { NULL_CLIENT_OBSERVER, type ClientObserver, type FailoverReason, type NoticeResult, type RemapResult, type RetryReason } from "./observer.js";
export { CACHE_KINDS, type CacheKind } from "./budget.js";
export { fitStatfs, fsnameWithRiders, KERNEL_MAX_IO } from "./fuse-adapter.js";
export { backoffDelay, classifyAttemptError, alreadyDoneErrno } from "./retry.js";
export { pathAfterRename } from "./handle.js";

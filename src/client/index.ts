export { mountExports, discoverExports, type MountRequest, type MountedExports } from "./session.js";
export { DEFAULT_CLIENT_OPTIONS, type ClientOptions } from "./options.js";
export { NULL_CLIENT_OBSERVER, type ClientObserver, type FailoverReason, type RemapResult, type RetryReason } from "./observer.js";
export { fitStatfs, fsnameWithRiders, KERNEL_MAX_IO } from "./fuse-adapter.js";
export { backoffDelay, classifyAttemptError, alreadyDoneErrno } from "./retry.js";
export { pathAfterRename } from "./handles.js";

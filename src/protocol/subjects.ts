import { isOpName, type OpName } from "./ops.js";

/** Root token of every natsfs subject. */
export const SUBJECT_ROOT = "natsfs";

/** Export names, identities and instance ids are single subject tokens. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function isToken(value: string): boolean {
  return TOKEN.test(value);
}

export function assertToken(kind: string, value: string): string {
  if (!isToken(value)) {
    throw new Error(`${kind} "${value}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
  }
  return value;
}

/** Queue group shared by every instance serving one export. */
export function queueGroup(exportName: string): string {
  return `${SUBJECT_ROOT}.${exportName}`;
}

/** Subject for a request any instance of the export may serve, or one owned by `instance`. */
export function requestSubject(exportName: string, identity: string, op: OpName, instance?: string): string {
  const base = `${SUBJECT_ROOT}.${exportName}.${identity}.${op}`;
  return instance === undefined ? base : `${base}.${instance}`;
}

/** What a server subscribes to: all identities and ops, on the shared and its own instance subjects. */
export function serverSubscriptions(exportName: string, instance: string): { shared: string; own: string } {
  return {
    shared: `${SUBJECT_ROOT}.${exportName}.*.*`,
    own: `${SUBJECT_ROOT}.${exportName}.*.*.${instance}`,
  };
}

/** Publish permission patterns for one identity on one export and a set of ops. */
export function permissionSubjects(exportName: string, identity: string, ops: readonly OpName[]): string[] {
  return ops.flatMap((op) => [requestSubject(exportName, identity, op), `${requestSubject(exportName, identity, op)}.*`]);
}

/** Private reply inbox prefix of an identity: permissions let only that identity subscribe to it. */
export function inboxPrefix(identity: string): string {
  return `_INBOX_${identity}`;
}

export interface ParsedSubject {
  exportName: string;
  identity: string;
  op: OpName;
  instance?: string;
}

/** Parses a request subject; undefined for anything that is not one. */
export function parseRequestSubject(subject: string): ParsedSubject | undefined {
  const parts = subject.split(".");
  if (parts.length !== 4 && parts.length !== 5) return undefined;
  const [root, exportName, identity, op, instance] = parts as [string, string, string, string, string?];
  if (root !== SUBJECT_ROOT || !isToken(exportName) || !isToken(identity) || !isOpName(op)) return undefined;
  if (instance !== undefined && !isToken(instance)) return undefined;
  return instance === undefined ? { exportName, identity, op } : { exportName, identity, op, instance };
}

/**
 * Export discovery: an identity asks on its own subject (permissions let only it publish there) and
 * every server answers with the exports that identity is granted, so nobody learns the rest.
 */
const DISCOVERY_ROOT = `${SUBJECT_ROOT}-discover`;

export function discoverySubject(identity: string): string {
  return `${DISCOVERY_ROOT}.${identity}`;
}

/** What a server subscribes to for discovery (one subject per identity). */
export const DISCOVERY_SUBSCRIPTION = `${DISCOVERY_ROOT}.*`;

/** The identity a discovery request was sent as; undefined for anything else. */
export function parseDiscoverySubject(subject: string): string | undefined {
  const prefix = `${DISCOVERY_ROOT}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const identity = subject.slice(prefix.length);
  return isToken(identity) ? identity : undefined;
}

/** True when `reply` is an inbox of `identity`: the only place a server sends that identity's answers. */
export function isInboxOf(identity: string, reply: string): boolean {
  return reply.startsWith(`${inboxPrefix(identity)}.`);
}

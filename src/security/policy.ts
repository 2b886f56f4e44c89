import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import { isToken } from "../protocol/index.js";
// Type-only: the server owns these shapes; no runtime dependency from security on server.
import type { AccessPolicy, ExportConfig, Grant } from "../server/config.js";

export type { AccessPolicy, ExportConfig, Grant };

/** nobody/nogroup: what squashed ids become unless the policy names others. */
const ANON_ID = 65534;
const MAX_ID = 2 ** 32 - 2;

export interface IdentityConfig {
  name: string;
  /** Export name → grant as written in the file (an export's readOnly still downgrades rw). */
  grants: Readonly<Record<string, Grant>>;
}

export interface Policy {
  /** Where it was read from, for messages. */
  file: string;
  exports: ExportConfig[];
  identities: IdentityConfig[];
  /** Identities allowed to serve exports. */
  servers: string[];
  policy: AccessPolicy;
}

/** A policy file that cannot be used; every line of the message names file:line: field: problem. */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

const token = z.string().refine(isToken, { error: "must be 1-64 characters of A-Z a-z 0-9 _ -" });
const unixId = z.number().int().min(0).max(MAX_ID);

const exportSchema = z.strictObject({
  path: z.string().refine(isAbsolute, { error: "must be an absolute path" }),
  readOnly: z.boolean().default(false),
  squash: z.enum(["none", "root", "all"], { error: 'expected "none" | "root" | "all"' }).default("none"),
  anonUid: unixId.default(ANON_ID),
  anonGid: unixId.default(ANON_ID),
  devices: z.boolean().default(false),
});

const identitySchema = z.strictObject({
  grants: z.record(token, z.enum(["rw", "ro"], { error: 'expected "rw" | "ro"' })).default({}),
});

const policySchema = z
  .strictObject({
    exports: z.record(token, exportSchema),
    identities: z.record(token, identitySchema).default({}),
    servers: z.array(token).default([]),
  })
  .superRefine((policy, ctx) => {
    for (const [identity, { grants }] of Object.entries(policy.identities)) {
      for (const exportName of Object.keys(grants)) {
        if (!Object.hasOwn(policy.exports, exportName)) {
          ctx.addIssue({ code: "custom", path: ["identities", identity, "grants", exportName], message: `no export named "${exportName}"` });
        }
      }
    }
  });

/** Effective grants: a read-only export turns every rw grant into ro. */
export function accessPolicy(exports: readonly ExportConfig[], identities: readonly IdentityConfig[]): AccessPolicy {
  const readOnly = new Map(exports.map((e) => [e.name, e.readOnly]));
  const grants = new Map(identities.map((i) => [i.name, i.grants]));
  return {
    grant(identity, exportName) {
      const granted = grants.get(identity)?.[exportName];
      if (granted === undefined || !readOnly.has(exportName)) return undefined;
      return readOnly.get(exportName) ? "ro" : granted;
    },
  };
}

/** Line of the deepest node along `path` that exists in the document (1-based). */
function lineOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as unknown[], true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lines.linePos(range[0]).line;
  }
  return 1;
}

/** Parses policy text (YAML, or JSON which is YAML too); `file` only labels messages. */
export function parsePolicy(text: string, file: string): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new PolicyError(doc.errors.map((e) => `${file}:${lines.linePos(e.pos[0]).line}: ${e.message.split("\n")[0]}`));
  }
  const parsed = policySchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new PolicyError(
      parsed.error.issues.map((issue) => {
        const field = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
        // A bad record key (an export or identity name) says only "Invalid key": show why.
        const message = issue.code === "invalid_key" ? `invalid name: ${issue.issues[0]?.message ?? issue.message}` : issue.message;
        // An unknown key (often a typo) is best shown on its own line rather than its object's.
        const where = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
        return `${file}:${lineOf(doc, lines, where)}: ${field}: ${message}`;
      }),
    );
  }
  const exports: ExportConfig[] = Object.entries(parsed.data.exports).map(([name, e]) => ({ name, ...e }));
  const identities: IdentityConfig[] = Object.entries(parsed.data.identities).map(([name, i]) => ({ name, grants: i.grants }));
  const servers = [...new Set(parsed.data.servers)];
  return { file, exports, identities, servers, policy: accessPolicy(exports, identities) };
}

export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolicyError([`${file}: cannot read the policy file: ${(err as Error).message}`]);
  }
  return parsePolicy(text, file);
}

import { decode, encode } from "@msgpack/msgpack";
import { z } from "zod";
import { DamagedFrameError, DecodeError, SEAL_BYTES, sealFrame } from "./codec.js";
import { SUBJECT_ROOT } from "./subjects.js";

/**
 * Change notices: after every change a server makes to an export, it says on the export's notice
 * subject what changed, so every client mounting the export drops what it cached of it before it
 * answers its next call. Only servers may publish there; identities granted the export subscribe.
 */
const NOTICE_ROOT = `${SUBJECT_ROOT}-notice`;

export function noticeSubject(exportName: string): string {
  return `${NOTICE_ROOT}.${exportName}`;
}

/** One thing that changed: a name (and, with `tree`, everything below it) or a file's contents by inode. */
export interface Change {
  path?: string;
  tree?: boolean;
  ino?: number;
}

export interface ChangeNotice {
  /** The client whose request made the change: it has already dropped what the change touches. */
  client: string;
  changes: Change[];
}

const noticeSchema = z.object({
  client: z.string().max(128),
  changes: z
    .array(
      z.object({
        path: z.string().max(4096).optional(),
        tree: z.boolean().optional(),
        ino: z.number().int().nonnegative().optional(),
      }),
    )
    .max(16),
});

/** A notice sealed for the subject it is published on. */
export function encodeNotice(notice: ChangeNotice, subject: string): Uint8Array {
  return sealFrame(encode(notice, { ignoreUndefined: true }), subject);
}

/** A notice received on `subject`, once its seal and shape check out. */
export function decodeNotice(frame: Uint8Array, subject: string): ChangeNotice {
  if (frame.length < SEAL_BYTES) throw new DamagedFrameError("notice too short to be sealed");
  const body = frame.subarray(0, frame.length - SEAL_BYTES);
  const resealed = sealFrame(body, subject);
  if (Buffer.compare(resealed.subarray(body.length), frame.subarray(body.length)) !== 0) {
    throw new DamagedFrameError(`notice damaged in transit on ${subject}`);
  }
  let value: unknown;
  try {
    value = decode(body, { maxStrLength: 8192, maxArrayLength: 64, maxMapLength: 8, maxBinLength: 0, maxExtLength: 0 });
  } catch (err) {
    throw new DecodeError(`malformed notice: ${(err as Error).message}`);
  }
  const parsed = noticeSchema.safeParse(value);
  if (!parsed.success) throw new DecodeError("malformed notice");
  return parsed.data;
}

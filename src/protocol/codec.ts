import { crc32 } from "node:zlib";
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { DiscoveryReply, Reply, Request } from "./messages.js";

/**
 * msgpack with file data as raw bin fields, sealed with a checksum. Decoding is bounded so a hostile
 * frame cannot make the server allocate more than the frame itself plausibly holds.
 *
 * Why a seal: NATS does not promise intact delivery end to end. A cluster whose route connections hit
 * write deadlines (a frozen node, a slow link) has been measured here handing clients frames with
 * bytes of other messages spliced in, and a file write whose data field is damaged still decodes. Every
 * frame therefore ends in a CRC-32 over the subject it is sent on and its body: a frame damaged in
 * transit, or delivered on a subject other than the one it was sealed for (a reply reaching another
 * request's inbox), is caught and retried instead of being acted on.
 */
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({
  maxStrLength: 64 * 1024,
  maxBinLength: 8 * 1024 * 1024,
  maxArrayLength: 1024 * 1024,
  maxMapLength: 64,
  maxExtLength: 0,
});

/** Bytes the seal adds to every frame. */
export const SEAL_BYTES = 4;

export class DecodeError extends Error {
  override readonly name: string = "DecodeError";
}

/** The frame's seal does not match its subject and body: it was damaged or misdelivered on the way. */
export class DamagedFrameError extends DecodeError {
  override readonly name = "DamagedFrameError";
}

function checksum(subject: string, body: Uint8Array): number {
  return crc32(body, crc32(subject));
}

/** Appends the seal for `subject` to an encoded body. */
export function sealFrame(body: Uint8Array, subject: string): Uint8Array {
  const frame = new Uint8Array(body.length + SEAL_BYTES);
  frame.set(body);
  new DataView(frame.buffer, frame.byteOffset + body.length, SEAL_BYTES).setUint32(0, checksum(subject, body));
  return frame;
}

/** The body of a frame received on `subject`, once its seal checks out. */
function unsealFrame(frame: Uint8Array, subject: string, what: string): Uint8Array {
  if (frame.length < SEAL_BYTES) throw new DamagedFrameError(`${what} of ${frame.length} bytes is too short to be sealed`);
  const body = frame.subarray(0, frame.length - SEAL_BYTES);
  const seal = new DataView(frame.buffer, frame.byteOffset + body.length, SEAL_BYTES).getUint32(0);
  if (seal !== checksum(subject, body)) throw new DamagedFrameError(`${what} damaged in transit: checksum mismatch on ${subject}`);
  return body;
}

/** A request ready to send on `subject`. */
export function encodeRequest(request: Request, subject: string): Uint8Array {
  return sealFrame(encoder.encodeSharedRef(request), subject);
}

/**
 * An unsealed reply body. The server seals it for the inbox it answers (`sealFrame`) only when it
 * sends, because a cached reply is re-sent to the inbox of a retry.
 */
export function encodeReply(reply: Reply): Uint8Array {
  return encoder.encode(reply);
}

function decodeObject(body: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = decoder.decode(body);
  } catch (err) {
    throw new DecodeError(`malformed ${what}: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DecodeError(`malformed ${what}: not a map`);
  }
  return value as Record<string, unknown>;
}

/** Decodes the envelope of a request received on `subject`; the op's arguments are validated by the server's dispatcher. */
export function decodeRequest(frame: Uint8Array, subject: string): { id: string; deadline: number; args: Record<string, unknown> } {
  const value = decodeObject(unsealFrame(frame, subject, "request"), "request");
  const { id, deadline, args } = value;
  if (typeof id !== "string" || id.length === 0 || id.length > 128) throw new DecodeError("request id missing");
  if (typeof deadline !== "number" || !Number.isFinite(deadline)) throw new DecodeError("request deadline missing");
  if (typeof args !== "object" || args === null || Array.isArray(args) || ArrayBuffer.isView(args)) throw new DecodeError("request args missing");
  return { id, deadline, args: args as Record<string, unknown> };
}

/** A reply that is well formed but answers another request than the one waiting for it. */
export class MisdirectedReplyError extends DecodeError {
  override readonly name = "MisdirectedReplyError";
}

/**
 * Decodes a reply received on `subject` (the requester's inbox) for the request `requestId`. The id
 * is inside the sealed body, so a reply to someone else's request, even one sent into our inbox, is
 * refused. A "damaged" answer is the exception: it only asks for a re-send, and the server could not
 * read the id of a request that arrived damaged.
 */
export function decodeReply<R>(frame: Uint8Array, subject: string, requestId: string): Reply<R> {
  const value = decodeObject(unsealFrame(frame, subject, "reply"), "reply");
  if (typeof value.errno !== "number" || typeof value.instance !== "string" || typeof value.epoch !== "string") {
    throw new DecodeError("malformed reply: errno, instance or epoch missing");
  }
  if (value.id !== requestId && value.damaged !== true) {
    throw new MisdirectedReplyError(`reply for request ${String(value.id).slice(0, 64)} received for ${requestId}`);
  }
  return value as unknown as Reply<R>;
}

/** An unsealed discovery answer body (sealed for the asker's inbox when sent, like a reply). */
export function encodeDiscoveryReply(reply: DiscoveryReply): Uint8Array {
  return encoder.encode(reply);
}

/** Decodes a discovery answer received on `subject`; malformed entries are refused, not skipped. */
export function decodeDiscoveryReply(frame: Uint8Array, subject: string): DiscoveryReply {
  const value = decodeObject(unsealFrame(frame, subject, "discovery reply"), "discovery reply");
  const { instance, epoch, exports } = value;
  if (typeof instance !== "string" || typeof epoch !== "string" || !Array.isArray(exports) || exports.length > 4096) {
    throw new DecodeError("malformed discovery reply");
  }
  for (const entry of exports) {
    if (typeof entry !== "object" || entry === null || typeof entry.name !== "string" || typeof entry.readOnly !== "boolean") {
      throw new DecodeError("malformed discovery reply entry");
    }
  }
  return { instance, epoch, exports: exports as DiscoveryReply["exports"] };
}

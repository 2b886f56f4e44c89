import { Decoder, Encoder } from "@msgpack/msgpack";
import type { Reply, Request } from "./messages.js";

/**
 * msgpack with file data as raw bin fields. Decoding is bounded so a hostile frame cannot make the
 * server allocate more than the frame itself plausibly holds.
 */
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({
  maxStrLength: 64 * 1024,
  maxBinLength: 8 * 1024 * 1024,
  maxArrayLength: 1024 * 1024,
  maxMapLength: 64,
  maxExtLength: 0,
});

export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

export function encodeRequest(request: Request): Uint8Array {
  return encoder.encode(request);
}

export function encodeReply(reply: Reply): Uint8Array {
  return encoder.encode(reply);
}

function decodeObject(frame: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = decoder.decode(frame);
  } catch (err) {
    throw new DecodeError(`malformed ${what}: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DecodeError(`malformed ${what}: not a map`);
  }
  return value as Record<string, unknown>;
}

/** Decodes the envelope; the op's arguments are validated by the server's dispatcher. */
export function decodeRequest(frame: Uint8Array): { id: string; args: Record<string, unknown> } {
  const value = decodeObject(frame, "request");
  const { id, args } = value;
  if (typeof id !== "string" || id.length === 0 || id.length > 128) throw new DecodeError("request id missing");
  if (typeof args !== "object" || args === null || Array.isArray(args) || ArrayBuffer.isView(args)) throw new DecodeError("request args missing");
  return { id, args: args as Record<string, unknown> };
}

export function decodeReply<R>(frame: Uint8Array): Reply<R> {
  const value = decodeObject(frame, "reply");
  if (typeof value.errno !== "number" || typeof value.instance !== "string" || typeof value.epoch !== "string") {
    throw new DecodeError("malformed reply: errno, instance or epoch missing");
  }
  return value as unknown as Reply<R>;
}

import { randomBytes } from "node:crypto";

/** A random subject-safe id: used for client ids, server instance ids and epochs. */
export function randomId(bytes = 6): string {
  return randomBytes(bytes).toString("hex");
}

/** Request ids stay the same across retries of one call, so the server can recognise a duplicate. */
export class RequestIds {
  private sequence = 0;
  constructor(readonly clientId: string = randomId()) {}
  next(): string {
    this.sequence += 1;
    return `${this.clientId}:${this.sequence}`;
  }
}

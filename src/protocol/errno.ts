import { constants } from "node:os";

/** Linux errno numbers by name, e.g. ERRNO.ENOENT === 2. */
export const ERRNO = constants.errno as Readonly<Record<string, number>>;

const NAME_BY_NUMBER = new Map<number, string>(Object.entries(ERRNO).map(([name, num]) => [num, name]));

export function errnoName(errno: number): string {
  return NAME_BY_NUMBER.get(errno) ?? `E${errno}`;
}

/** An operation that failed with a POSIX errno, with enough context to log it usefully. */
export class FsError extends Error {
  readonly errno: number;
  readonly code: string;

  constructor(errno: number, context: string) {
    super(`${errnoName(errno)}: ${context}`);
    this.name = "FsError";
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

export function fsError(code: keyof typeof ERRNO | string, context: string): FsError {
  const errno = ERRNO[code];
  if (errno === undefined) throw new Error(`unknown errno ${code}`);
  return new FsError(errno, context);
}

/**
 * Errno of anything thrown by Node's fs, a native addon or our own code. Node reports libuv's
 * negative numbers in `err.errno` and the symbolic name in `err.code`; the name is what maps reliably.
 */
export function errnoOf(err: unknown): number {
  if (err instanceof FsError) return err.errno;
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && ERRNO[code] !== undefined) return ERRNO[code];
    const num = (err as { errno?: unknown }).errno;
    if (typeof num === "number" && num !== 0 && NAME_BY_NUMBER.has(Math.abs(num))) return Math.abs(num);
  }
  return ERRNO.EIO!;
}

/** Coarse class used as a bounded metric label. */
export function errnoClass(errno: number): string {
  return errno === 0 ? "ok" : errnoName(errno);
}

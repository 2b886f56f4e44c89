/**
 * Remembers which extended attributes a file does not have, for as long as the kernel trusts its
 * attributes. The kernel asks for `security.capability` before every write(2) to a FUSE file; without
 * this each write costs a round trip to the server.
 */
export class MissingXattrCache {
  private readonly missing = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  isMissing(path: string, name: string): boolean {
    const key = `${path}\0${name}`;
    const expires = this.missing.get(key);
    if (expires === undefined) return false;
    if (expires > this.now()) return true;
    this.missing.delete(key);
    return false;
  }

  rememberMissing(path: string, name: string): void {
    if (this.missing.size >= this.maxEntries) this.missing.delete(this.missing.keys().next().value!);
    this.missing.set(`${path}\0${name}`, this.now() + this.ttlMs);
  }

  /** Forgets everything known about `path` (and, for directories, below it). */
  forget(path: string): void {
    for (const key of this.missing.keys()) {
      const keyPath = key.slice(0, key.indexOf("\0"));
      if (keyPath === path || keyPath.startsWith(`${path}/`)) this.missing.delete(key);
    }
  }
}

/**
 * Times as the protocol carries them (see Stat): whole milliseconds, plus the nanoseconds within the
 * second when the server knows them.
 */

const NS_PER_S = 1_000_000_000n;

/** A time in nanoseconds since the epoch, as Stat's `…Ms` and `…Nsec` fields. */
export function splitTimeNs(ns: bigint): { ms: number; nsec: number } {
  let sec = ns / NS_PER_S;
  let nsec = ns % NS_PER_S;
  // bigint division truncates toward zero; a time before 1970 still has nsec in [0, 1e9).
  if (nsec < 0n) {
    nsec += NS_PER_S;
    sec -= 1n;
  }
  return { ms: Number(sec) * 1000 + Math.floor(Number(nsec) / 1e6), nsec: Number(nsec) };
}

/** A Stat time as a timespec; without `nsec` (an older server), what the milliseconds say. */
export function statTimespec(ms: number, nsec: number | undefined): { sec: number; nsec: number } {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: nsec ?? Math.round((ms - sec * 1000) * 1e6) };
}

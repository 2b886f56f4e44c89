import { setTimeout as sleep } from "node:timers/promises";
import { createInbox, type NatsConnection } from "nats";
import { decodeDiscoveryReply, discoverySubject, inboxPrefix, isToken } from "../protocol/index.js";

/**
 * Export names the servers on the bus serve and grant to `identity` (each server answers only with
 * those). Servers may still be starting (no responders yet): asks again until `patienceMs` has passed.
 */
export async function discoverExports(nc: NatsConnection, identity: string, patienceMs = 10_000, roundMs = 1_000): Promise<string[]> {
  const deadline = Date.now() + patienceMs;
  const subject = discoverySubject(identity);
  for (;;) {
    const found = new Set<string>();
    const inbox = createInbox(inboxPrefix(identity));
    const answers = nc.subscribe(inbox, { max: 1024 });
    const timer = setTimeout(() => answers.unsubscribe(), roundMs);
    nc.publish(subject, new Uint8Array(0), { reply: inbox });
    for await (const msg of answers) {
      try {
        for (const { name } of decodeDiscoveryReply(msg.data, msg.subject).exports) if (isToken(name)) found.add(name);
      } catch {
        // A damaged or malformed answer names nothing; the other servers' answers still count.
      }
    }
    clearTimeout(timer);
    if (found.size > 0 || Date.now() >= deadline) return [...found].sort();
    await sleep(roundMs);
  }
}

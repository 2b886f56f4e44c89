import { Events, type NatsConnection, type Subscription } from "nats";
import { decodeNotice, noticeSubject } from "../protocol/index.js";
import type { ExportState } from "./export-state.js";
import type { ClientObserver } from "./observer.js";

/**
 * Applies the change notices of every mounted export as they arrive, before the next call is answered
 * (nats.js runs subscription callbacks as messages are read). This client's own notices are skipped:
 * it dropped what its changes touch when it made them. After a reconnect notices may have been
 * missed (nats-server drops a slow consumer's messages and then its connection), so everything cached
 * for every export is dropped.
 */
export async function followNotices(
  nc: NatsConnection,
  exports: readonly ExportState[],
  clientId: string,
  observer: ClientObserver,
): Promise<() => void> {
  const subscriptions: Subscription[] = exports.map((state) =>
    nc.subscribe(noticeSubject(state.name), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const notice = decodeNotice(msg.data, msg.subject);
          if (notice.client === clientId) return observer.changeNotice("own");
          for (const change of notice.changes) state.apply(change);
          observer.changeNotice("applied");
        } catch {
          // A notice damaged in transit says nothing reliable: what was cached goes.
          state.forgetAll();
          observer.changeNotice("damaged");
        }
      },
    }),
  );
  await nc.flush();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type !== Events.Reconnect) continue;
      for (const state of exports) state.forgetAll();
      observer.changeNotice("missed");
    }
  })();
  return () => {
    for (const subscription of subscriptions) subscription.unsubscribe();
  };
}

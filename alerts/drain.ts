import type { Runtime } from '../platform/runtime.js';
import { coalesced, createFeedHub } from './feed.js';

/**
 * Runs `step` until it reports nothing left (returns 0), on each alert-feed announcement from
 * the database and every `everyMs` in case one was missed. Never runs two steps at once.
 */
export function createFeedDrainer(rt: Runtime, what: string, step: () => Promise<number>, everyMs = 2000) {
  const hub = createFeedHub(rt.config.DATABASE_URL, rt.pool, rt.logger);
  let last: Promise<void> = Promise.resolve();
  const drain = coalesced(
    async () => {
      while ((await step()) > 0);
    },
    (err) => rt.logger.warn({ err: err.message }, `${what} failed; retried`),
  );
  const run = () => (last = drain());
  hub.subscribe(() => void run());
  void hub.start();
  const timer = setInterval(() => void run(), everyMs);
  return {
    run,
    async close() {
      clearInterval(timer);
      await hub.close();
      await last;
    },
  };
}

import { stackUpWithRetry } from './common/setup.js';
import { benchOptions, intFlag, runBench, table } from './common/runner.js';
import { liveInboxPhase } from './console/live-inbox.js';

/**
 * `npm run bench:console-live`: the live-inbox phase of `npm run bench:console` alone
 * (bench/console/live-inbox.ts): publish → alert visible in an open inbox, p99 over 100 alerts.
 */
const USAGE = `usage: npm run bench:console-live -- [--alerts N] [--quiet-wait S] [--timeout S]
Quick check: --alerts 10 --quiet-wait 0`;

const opts = benchOptions('bench:console-live', USAGE, { alerts: { type: 'string', default: '100' } }, { seed: '1', timeout: '1800' }, (f) => ({ alerts: intFlag('alerts', f.alerts, 1) }));

runBench('bench:console-live', opts.timeoutMs, opts.quietMs, async ({ cleanups, log, settle }) => {
  const stack = await stackUpWithRetry(log);
  await settle();
  const rows = await liveInboxPhase({ stack, cleanups, log, alerts: opts.alerts });
  return table(['measurement', 'value', 'unit', 'target', ''], rows, new Set([1]));
});

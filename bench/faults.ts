import { fixed, int, runBench, table, benchOptions, intFlag } from './common/runner.js';
import { stackUpWithRetry } from './common/setup.js';
import { FAILOVERS, FAULTS, runFault, type Fault, type FaultOptions } from './faults/scenario.js';
import { haEngines, lightEngines } from './faults/engines.js';
import { stackUpHa } from '../scripts/stack.js';
import type { FaultRow } from './faults/truth.js';

/**
 * npm run test:faults — the fault suite (issue 14 §3): a fleet with ground truth publishes while
 * one fault at a time hits the service; then every acknowledged reading must be stored exactly
 * once, every breach alerted exactly once, every alert delivered to the SSE stream and the
 * webhook. Prints one table; exits 1 when any row loses or duplicates something.
 */
const USAGE = `usage: npm run test:faults -- [--faults ${Object.keys(FAULTS).join(',')}]
  [--devices N] [--interval-s S] [--seconds S] [--fault-at-s S] [--down-s S] [--partition-s S] [--drain-timeout S]
  [--subscription shared|exclusive] (INGEST_SUBSCRIPTION of the ingest part)
Defaults: 10,000 devices every 5 s (2,000 readings/s), 150 s, the fault at 40 s.
Quick check: --devices 500 --seconds 100 --faults none,kill-ingest
pg-failover and redis-failover run on the HA engines (Patroni, HAProxy, Sentinels), brought up when asked for.`;
const GRACE_S = 60;
const badFlag = (name: string, v: string): never => {
  throw new Error(`--${name} takes shared or exclusive, got ${v}`);
};

const opts = benchOptions(
  'test:faults',
  USAGE,
  {
    faults: { type: 'string', default: Object.keys(FAULTS).join(',') },
    devices: { type: 'string', default: '10000' },
    'interval-s': { type: 'string', default: '5' },
    seconds: { type: 'string', default: '150' },
    'fault-at-s': { type: 'string', default: '40' },
    'down-s': { type: 'string', default: '5' },
    'partition-s': { type: 'string', default: '30' },
    'breach-pct': { type: 'string', default: '5' },
    'drain-timeout': { type: 'string', default: '180' },
    subscription: { type: 'string', default: 'shared' },
  },
  { seed: '14', timeout: '7200' },
  (f) => {
    const faults = f.faults.split(',').map((x) => x.trim()) as Fault[];
    for (const x of faults) if (!(x in FAULTS)) throw new Error(`unknown fault ${x}`);
    const o: Omit<FaultOptions, 'seed'> = {
      devices: intFlag('devices', f.devices, 1),
      intervalMs: intFlag('interval-s', f['interval-s'], 1) * 1000,
      durationMs: intFlag('seconds', f.seconds, 30) * 1000,
      faultAtMs: intFlag('fault-at-s', f['fault-at-s'], 1) * 1000,
      downMs: intFlag('down-s', f['down-s'], 0) * 1000,
      partitionMs: intFlag('partition-s', f['partition-s'], 1) * 1000,
      breachFixes: 0,
      breachPct: intFlag('breach-pct', f['breach-pct'], 1),
      drainTimeoutMs: intFlag('drain-timeout', f['drain-timeout'], 10) * 1000,
      subscription: f.subscription === 'exclusive' ? 'exclusive' : f.subscription === 'shared' ? 'shared' : badFlag('subscription', f.subscription),
    };
    o.breachFixes = Math.ceil((GRACE_S * 1000 * 1.4) / o.intervalMs) + 1;
    return { faults, o };
  },
);
runBench('test:faults', opts.timeoutMs, 0, async ({ cleanups, log }) => {
  const stack = await stackUpWithRetry(log);
  const light = lightEngines(stack);
  // the failover rows run on the HA engines (Patroni behind HAProxy, Redis with Sentinels), brought up here
  const ha = opts.faults.some((f) => FAILOVERS.has(f)) ? haEngines(await stackUpHa(log)) : null;
  const rows: FaultRow[] = [];
  for (const f of opts.faults) {
    rows.push(await runFault(stack, FAILOVERS.has(f) ? ha! : light, cleanups, f, { ...opts.o, seed: opts.seed }, log));
    const r = rows[rows.length - 1]!;
    log(`${f}: lost ${r.readingsLost}, missed ${r.alertsMissed}, deliveries lost ${r.sseLost + r.webhookLost}`);
  }
  const bad = rows.filter((r) => r.readingsLost || r.readingsDuplicated || r.alertsMissed || r.alertsDuplicated || r.alertsUnexpected || r.sseLost || r.webhookLost);
  const head = `fault suite: ${opts.o.devices.toLocaleString('en-GB')} devices, a fix every ${opts.o.intervalMs / 1000} s (${int((opts.o.devices * 1000) / opts.o.intervalMs)} readings/s) for ${opts.o.durationMs / 1000} s; fault at +${opts.o.faultAtMs / 1000} s; parts down ${opts.o.downMs / 1000} s, partition ${opts.o.partitionMs / 1000} s; ingest subscription ${opts.o.subscription}`;
  const t = table(
    ['fault', 'recovery s', 'acked', 'stored', 'rejected', 'readings lost/dup', 'breaches', 'alerts missed/dup/unexp', 'late', 'deliveries lost SSE/webhook', 'redelivered', 'notes'],
    rows.map((r) => [r.label, fixed(r.recoveryS), int(r.acked), int(r.stored), int(r.rejected), `${r.readingsLost} / ${r.readingsDuplicated}`, int(r.breaches), `${r.alertsMissed} / ${r.alertsDuplicated} / ${r.alertsUnexpected}`, int(r.late), `${r.sseLost} / ${r.webhookLost}`, int(r.redelivered), r.note]),
    new Set([1, 2, 3, 4, 6, 8, 10]),
  );
  const verdict = bad.length ? `FAIL: ${bad.map((r) => r.fault).join(', ')}` : 'PASS: nothing lost, duplicated or missed';
  const report = `${head}\nrecovery: the longest publish → stored or stored → alert delay of the run\n\n${t}\n\n${verdict}`;
  if (bad.length) {
    console.log(`\n${report}\n`);
    throw new Error(verdict);
  }
  return report;
});

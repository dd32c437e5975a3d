import { join } from 'node:path';
import { ROOT } from '../scripts/stack.js';
import { stackUpWithRetry } from './common/setup.js';
import { benchOptions, fixed, int, intFlag, runBench, table } from './common/runner.js';
import { minuteQuantiles } from './soak/chart.js';
import { writeSoakFiles } from './soak/output.js';
import { runSoak } from './soak/run.js';
import { checkLine, flatness, type Check } from './soak/verdict.js';

/**
 * `npm run bench:soak` (issue 14 §5): bench:geofence phase (d) held for `--minutes` with
 * breaches all along; per minute the RSS of every process, the queue depth and publish→alert
 * p50/p99; a "flat" verdict per series, a PNG chart and the samples as CSV.
 */

const USAGE = `usage: npm run bench:soak -- [--devices N] [--minutes M] [--interval-s S] [--breaches-per-min B]
  [--warmup-min W] [--out FILE.png] [--drain-timeout S] [--pub-connections N] [--seed N] [--quiet-wait S] [--timeout S]
Defaults: 20,000 devices, one fix every 10 s each (2,000 fixes/s), 30 minutes, 100 breaches a minute
(0.5 % of the devices), 2 warm-up minutes; chart at bench/results/soak-<date>.png, samples beside it (.csv).
Quick check: --devices 1000 --minutes 3 --quiet-wait 0`;

const opts = benchOptions(
  'bench:soak',
  USAGE,
  {
    devices: { type: 'string', default: '20000' },
    minutes: { type: 'string', default: '30' },
    'interval-s': { type: 'string', default: '10' },
    'breaches-per-min': { type: 'string', default: '' },
    'warmup-min': { type: 'string', default: '2' },
    out: { type: 'string', default: '' },
    'drain-timeout': { type: 'string', default: '180' },
    'pub-connections': { type: 'string', default: '8' },
  },
  { seed: '42', timeout: '7200' },
  (f) => {
    const devices = intFlag('devices', f.devices, 10);
    const minutes = intFlag('minutes', f.minutes, 2);
    return {
      devices,
      minutes,
      intervalMs: intFlag('interval-s', f['interval-s'], 1) * 1000,
      breachesPerMinute: f['breaches-per-min'] ? intFlag('breaches-per-min', f['breaches-per-min'], 1) : Math.max(5, Math.round(devices / 200)),
      // at least two minutes are left to compare
      warmupMinutes: Math.min(intFlag('warmup-min', f['warmup-min'], 0), minutes - 2),
      out: f.out || join(ROOT, 'bench', 'results', `soak-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.png`),
      drainMs: intFlag('drain-timeout', f['drain-timeout'], 10) * 1000,
      pubConnections: intFlag('pub-connections', f['pub-connections'], 1),
    };
  },
);
const RULES = { rssGrowthPct: 10, p99Ms: 2000 };
const verdictOf = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

runBench('bench:soak', opts.timeoutMs, opts.quietMs, async ({ cleanups, log, settle }) => {
  const stack = await stackUpWithRetry(log);
  const r = await runSoak(
    stack,
    cleanups,
    {
      devices: opts.devices,
      intervalMs: opts.intervalMs,
      minutes: opts.minutes,
      breachesPerMinute: opts.breachesPerMinute,
      drainTimeoutMs: opts.drainMs,
      pubConnections: opts.pubConnections,
      seed: opts.seed,
      queueEveryMs: 2000,
      memoryEveryMs: 10_000,
    },
    log,
    settle,
  );
  const offered = (opts.devices * 1000) / opts.intervalMs;
  const names = Object.keys(r.samples[0]?.rssMiB ?? {});
  const rows = r.samples.map((s) => {
    const q = minuteQuantiles(s.latencies);
    return [
      String(s.minute),
      ...names.map((n) => fixed(s.rssMiB[n] ?? NaN, 0)),
      int(s.queueJobs),
      int(s.marks),
      int(s.fixesStored),
      int(s.latencies.length),
      `${fixed(q.p50, 0)} / ${fixed(q.p99, 0)}`,
    ];
  });
  const checks: Check[] = flatness(r.samples, { ...RULES, warmupMinutes: opts.warmupMinutes, queueFloor: offered });
  const truthOk = r.missed + r.duplicated + r.unexpected + r.wrongStart === 0;
  const files = writeSoakFiles(opts.out, {
    title: `bench:soak: ${int(opts.devices)} devices, ${int(offered)} fixes/s, ${opts.minutes} min (${new Date().toISOString().slice(0, 16)}Z)`,
    samples: r.samples,
    warmupMinutes: opts.warmupMinutes,
    p99TargetMs: RULES.p99Ms,
  });
  return [
    `soak: fleet → Mosquitto (anonymous, own) → ingest → BullMQ → worker (+ an api process), ${int(opts.devices)} devices, one fix every ${opts.intervalMs / 1000} s (${int(offered)} fixes/s) for ${opts.minutes} min; ${int(r.breaches)} breaches spread over the run (grace 60 s)`,
    'RSS in MiB, mean of snapshots every 10 s within the minute (postgres: the cluster’s processes summed as PSS); queue columns: peaks within the minute (sampled every 2 s)',
    table(
      ['minute', ...names, 'eval jobs', 'devices waiting', 'fixes stored', 'alerts', 'publish→alert p50 / p99 ms'],
      rows,
      new Set(Array.from({ length: names.length + 6 }, (_, i) => i)),
    ),
    '',
    `flat, after a ${opts.warmupMinutes}-minute warm-up (first third of the remaining minutes vs the last third):`,
    ...checks.map(checkLine),
    `${verdictOf(truthOk)}  ground truth: ${r.expected} breaches expected, ${r.raised} exclusion alerts raised; missed ${r.missed}, duplicated ${r.duplicated}, unexpected ${r.unexpected}, wrong start ${r.wrongStart} (late ${r.late})`,
    `${verdictOf(r.complete && r.stored === r.published && r.rejected === 0)}  every fix stored: ${int(r.stored)} of ${int(r.published)} published (${int(r.storedAfter)} after the last minute, during the ${fixed(r.drainSeconds, 1)} s drain${r.complete ? '' : ', not drained'}), ${int(r.rejected)} rejected`,
    '',
    `CPU over the run, % of one core: ${Object.entries(r.cpu.groups).map(([k, v]) => `${k} ${fixed(v, 0)}`).join(', ')}; other ${fixed(r.cpu.other, 0)}, machine ${fixed(r.cpu.machine, 0)}`,
    ...(r.cpu.other > 50 ? [`WARNING: processes outside the soak used ${fixed(r.cpu.other, 0)} % of one core on average: the queue and latency figures are disturbed`] : []),
    `other alerts raised: ${r.otherAlerts}; publisher fell behind its schedule by at most ${fixed(r.maxLagMs, 0)} ms`,
    `chart: ${files.png}`,
    `samples: ${files.csv}`,
  ].join('\n');
});

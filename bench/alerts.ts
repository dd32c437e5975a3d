import { ConfigSchema } from '../platform/config.js';
import { stackUpWithRetry } from './common/setup.js';
import { fixed, int, benchOptions, intFlag, runBench, table } from './common/runner.js';
import { runPass, type PassResult } from './alerts/pass.js';

/**
 * `npm run bench:alerts` (issue 5, "Performance"): 20,000 assigned devices, 1 % of them cutting
 * their strap within one minute; publish-to-stream (SSE, as a supervisor) and
 * publish-to-webhook latency, and delivery to 100 webhook receivers, in a pass where all are
 * healthy and a pass where 10 % are dead (half refusing connections, half hanging), to show
 * whether dead receivers slow the healthy ones. The service runs as api, ingest and worker
 * child processes against a fresh database per pass.
 */

const USAGE = `usage: npm run bench:alerts -- [--devices N] [--breach-pct P] [--heartbeat-s S] [--receivers N]
  [--dead-pct P] [--passes baseline,dead] [--drain-timeout S] [--seed N] [--quiet-wait S] [--timeout S]
Quick check: --devices 2000 --receivers 20 --passes dead`;

const opts = benchOptions(
  'bench:alerts',
  USAGE,
  {
    devices: { type: 'string', default: '20000' },
    'breach-pct': { type: 'string', default: '1' },
    'heartbeat-s': { type: 'string', default: '300' },
    receivers: { type: 'string', default: '100' },
    'dead-pct': { type: 'string', default: '10' },
    passes: { type: 'string', default: 'baseline,dead' },
    'drain-timeout': { type: 'string', default: '180' },
  },
  { seed: '7', timeout: '3600' },
  (f) => {
    const o = {
      devices: intFlag('devices', f.devices, 100),
      breachPct: Number(f['breach-pct']),
      heartbeatMs: intFlag('heartbeat-s', f['heartbeat-s'], 1) * 1000,
      receivers: intFlag('receivers', f.receivers, 1),
      deadPct: intFlag('dead-pct', f['dead-pct'], 0),
      passes: f.passes.split(','),
      drainMs: intFlag('drain-timeout', f['drain-timeout'], 10) * 1000,
    };
    if (!(o.breachPct > 0 && o.breachPct <= 100)) throw new Error(`--breach-pct must be in (0, 100], got ${f['breach-pct']}`);
    if (o.passes.some((p) => p !== 'baseline' && p !== 'dead')) throw new Error(`--passes takes baseline and/or dead, got ${f.passes}`);
    return o;
  },
);
const P99_MS = 2000;
const dflt = (k: keyof typeof ConfigSchema.properties) => String((ConfigSchema.properties[k] as { default?: unknown }).default);

runBench('bench:alerts', opts.timeoutMs, opts.quietMs, async ({ cleanups, log, settle }) => {
  const stack = await stackUpWithRetry(log);
  const dead = Math.round((opts.receivers * opts.deadPct) / 100);
  const results: PassResult[] = [];
  for (const p of opts.passes) {
    const refused = p === 'dead' ? Math.floor(dead / 2) : 0;
    const hanging = p === 'dead' ? dead - refused : 0;
    const label = p === 'dead' ? `${dead} of ${opts.receivers} dead (${refused} refusing, ${hanging} hanging)` : `all ${opts.receivers} healthy`;
    results.push(
      await runPass(
        stack,
        cleanups,
        { label, devices: opts.devices, breachPct: opts.breachPct, heartbeatMs: opts.heartbeatMs, receivers: opts.receivers, refused, hanging, drainTimeoutMs: opts.drainMs, seed: opts.seed },
        log,
        settle,
      ),
    );
  }
  const lat = (s: { p50: number; p99: number; max: number }) => `${fixed(s.p50, 0)} / ${fixed(s.p99, 0)} / ${fixed(s.max, 0)}`;
  const rows: string[][] = [];
  for (const r of results) {
    const streamOk = r.stream.n === r.expected && r.stream.p99 < P99_MS;
    const hookOk = r.deliveries === r.deliveriesExpected && r.webhook.p99 < P99_MS;
    rows.push([r.label, 'alerts raised / expected', `${r.raised} / ${r.expected}`, '', 'all', r.raised === r.expected ? 'PASS' : 'MISS']);
    rows.push(['', 'publish→alert raised (DB) p50/p99/max', lat(r.publishToRaised), 'ms', '', '']);
    rows.push(['', `publish→SSE stream p50/p99/max (${r.stream.n} events)`, lat(r.stream), 'ms', `p99 < ${P99_MS}`, streamOk ? 'PASS' : 'MISS']);
    rows.push(['', 'publish→webhook, healthy receivers p50/p99/max', lat(r.webhook), 'ms', `p99 < ${P99_MS}`, hookOk ? 'PASS' : 'MISS']);
    rows.push(['', 'per healthy receiver p99: best / worst', `${fixed(r.receiverP99.best, 0)} / ${fixed(r.receiverP99.worst, 0)}`, 'ms', '', '']);
    rows.push(['', `deliveries to ${r.healthy} healthy receivers (unique)`, `${int(r.deliveries)} / ${int(r.deliveriesExpected)}`, '', 'all', r.deliveries === r.deliveriesExpected ? 'PASS' : 'MISS']);
    rows.push(['', 'duplicates / bad signatures', `${r.duplicates} / ${r.badSignatures}`, '', '', '']);
    rows.push(['', '  of which: alert raised → delivery row (dispatcher) p50/p99', `${fixed(r.dispatchLeg.p50, 0)} / ${fixed(r.dispatchLeg.p99, 0)}`, 'ms', '', '']);
    rows.push(['', '  delivery row → delivered (queue + attempt) p50/p99', `${fixed(r.deliverLeg.p50, 0)} / ${fixed(r.deliverLeg.p99, 0)}`, 'ms', '', '']);
    rows.push(['', '    of which: row → start of the delivering attempt p50/p99', `${fixed(r.queueLeg.p50, 0)} / ${fixed(r.queueLeg.p99, 0)}`, 'ms', '', '']);
    rows.push(['', `  one HTTP attempt to a healthy receiver p50/p99 (${int(r.attemptMs.n)} attempts)`, `${fixed(r.attemptMs.p50, 0)} / ${fixed(r.attemptMs.p99, 0)}`, 'ms', '', '']);
    rows.push(['', `delivery rate achieved, first tamper → last delivery (offered ${fixed(r.deliveriesExpected / 60, 0)}/s)`, fixed(r.throughput, 0), 'deliveries/s', '', '']);
    rows.push(['', 'attempts at dead receivers (mean duration)', `${int(r.deadAttempts)} (${fixed(r.deadAttemptMs, 0)} ms)`, '', '', '']);
  }
  const base = results.find((r) => r.label.startsWith('all'));
  const withDead = results.find((r) => !r.label.startsWith('all'));
  const verdict = base && withDead
    ? `healthy receivers with dead ones present: webhook p99 ${fixed(withDead.webhook.p99, 0)} ms vs ${fixed(base.webhook.p99, 0)} ms with none dead (${withDead.webhook.p99 <= Math.max(P99_MS, 1.5 * base.webhook.p99) ? 'unaffected within the target' : 'AFFECTED'})`
    : '';
  return [
    'storage path: plain PostgreSQL (no TimescaleDB on this server)',
    `- ${int(opts.devices)} assigned tags sending a status heartbeat every ${opts.heartbeatMs / 1000} s; ${opts.breachPct} % cut their strap at random moments within one minute (status reading strap open, event strap_tamper)`,
    `- out: one supervisor's SSE stream; ${opts.receivers} receivers on loopback, each a supervisor's webhook (every alert goes to every receiver); WEBHOOK_ALLOW_PRIVATE=true`,
    `- api, ingest and worker are child processes with their defaults (webhook attempts in flight: ${dflt('WEBHOOK_CONCURRENCY')} per worker, ${dflt('WEBHOOK_RECEIVER_CONCURRENCY')} per receiver; connect timeout ${dflt('WEBHOOK_CONNECT_TIMEOUT_MS')} ms, attempt timeout ${dflt('WEBHOOK_TIMEOUT_MS')} ms; breaker opens after ${dflt('WEBHOOK_BREAKER_FAILURES')} failures; DB pool ${dflt('DB_POOL_MAX')})`,
    '',
    table(['pass', 'measurement', 'value', 'unit', 'target', ''], rows, new Set([2])),
    ...(verdict ? ['', verdict] : []),
    '',
    'CPU per pass, % of one core (2 cores: 200 % is the whole machine):',
    table(
      ['pass', 'seconds', 'api', 'ingest', 'worker', 'postgres', 'redis', 'mosquitto', 'fleet', 'bench', 'other', 'softirq (machine)', 'machine'],
      results.map((r) => [r.label, fixed(r.cpu.seconds, 0), ...['api', 'ingest', 'worker', 'postgres', 'redis', 'mosquitto', 'fleet', 'bench'].map((g) => fixed(r.cpu.groups[g] ?? NaN, 0)), fixed(r.cpu.other, 0), fixed(r.softirq, 0), fixed(r.cpu.machine, 0)]),
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    ),
  ].join('\n');
});

import { randomBytes } from 'node:crypto';
import { classifySubject } from '../alcohol/classify.js';
import { classifyDays, localDays, type DayResult, type Interval } from '../alcohol/days.js';
import { findEvents } from '../alcohol/events.js';
import { findObstructions } from '../alcohol/tamper.js';
import { DEFAULT_PARAMS } from '../alcohol/params.js';
import { createBenchDatabase, stackUpWithRetry } from './common/setup.js';
import { subjectYear } from './alcohol/data.js';
import { buildBenchApp, measureSobriety, storeDays } from './alcohol/query.js';
import { fixed, int, benchOptions, intFlag, Results, runBench } from './common/runner.js';

/**
 * `npm run bench:alcohol` (issue 4, "Performance"): 2,000 subjects x 365 days of readings every
 * 30 minutes, generated in memory per subject and classified from scratch with the pure core
 * (alcohol/classify.ts classifySubject, timed alone); then the day results stored in a fresh
 * database (saveDays, which keeps the (subject, month) rollup with them) and GET /v1/sobriety for
 * all subjects over the year, and over the year less 15 days at each end (partial months), through
 * the real Fastify app.
 */

const USAGE = `usage: npm run bench:alcohol -- [--subjects N] [--days N] [--from YYYY-MM-DD] [--calls N]
  [--breakdown N] [--seed N] [--quiet-wait S] [--timeout S]
Quick check: --subjects 100 --days 60 --calls 10`;

const opts = benchOptions(
  'bench:alcohol',
  USAGE,
  {
    subjects: { type: 'string', default: '2000' },
    days: { type: 'string', default: '365' },
    from: { type: 'string', default: '2025-01-01' },
    calls: { type: 'string', default: '50' },
    breakdown: { type: 'string', default: '50' },
  },
  { seed: '42', timeout: '3600' },
  (f) => {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(f.from)) throw new Error(`--from must be YYYY-MM-DD, got ${f.from}`);
    return {
      subjects: intFlag('subjects', f.subjects, 1),
      days: intFlag('days', f.days, 1),
      calls: intFlag('calls', f.calls, 1),
      breakdown: intFlag('breakdown', f.breakdown, 0),
      from: f.from,
    };
  },
);
const TZ = 'Europe/London';
const TARGET = { perSec: 1_000_000, p99Ms: 200 };
const from = opts.from;
const to = new Date(Date.parse(`${from}T00:00:00Z`) + opts.days * 86_400_000).toISOString().slice(0, 10);

/** Time of each stage of classifySubject (same steps, timed apart) over the first `n` subjects. */
function stageBreakdown(n: number, days: Array<[string, number, number]>, fitted: Interval[]): Record<string, number> {
  const t: Record<string, number> = { 'sort + typed arrays': 0, 'findEvents (TAC runs)': 0, 'findObstructions (baseline medians)': 0, 'localDays (luxon calendar)': 0, classifyDays: 0 };
  const p = DEFAULT_PARAMS;
  for (let s = 0; s < n; s++) {
    const readings = subjectYear(opts.seed, s, days);
    let t0 = performance.now();
    const sorted = [...readings].sort((a, b) => a.ts - b.ts);
    const m = sorted.length;
    const ts = new Float64Array(m);
    const tac = new Float64Array(m);
    const ir = new Float64Array(m);
    const temp = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      const r = sorted[i]!;
      ts[i] = r.ts;
      tac[i] = r.tac;
      ir[i] = r.ir ?? NaN;
      temp[i] = r.temp_c;
    }
    const lap = (k: string) => {
      const now = performance.now();
      t[k]! += now - t0;
      t0 = now;
    };
    lap('sort + typed arrays');
    const events = findEvents(ts, tac, p);
    lap('findEvents (TAC runs)');
    const tampers = findObstructions(ts, ir, temp, p);
    lap('findObstructions (baseline medians)');
    const calendar = localDays(from, to, TZ);
    lap('localDays (luxon calendar)');
    classifyDays(ts, calendar, fitted, events, tampers, p);
    lap('classifyDays');
  }
  return t;
}

runBench('bench:alcohol', opts.timeoutMs, opts.quietMs, async ({ cleanups, log, settle }) => {
  const res = new Results();
  const days = localDays(from, to, TZ);
  const fitted: Interval[] = [[days[0]![1], Number.MAX_SAFE_INTEGER]];
  await settle();
  log(`classifying ${opts.subjects} subjects x ${opts.days} days (${from} to ${to}, ${TZ})`);
  const results: DayResult[][] = [];
  let readings = 0;
  let genMs = 0;
  let classifyMs = 0;
  let events = 0;
  let tampers = 0;
  const statuses: Record<string, number> = { sober: 0, drinking: 0, tamper: 0, not_monitored: 0 };
  for (let s = 0; s < opts.subjects; s++) {
    let t = performance.now();
    const subject = subjectYear(opts.seed, s, days);
    genMs += performance.now() - t;
    t = performance.now();
    const c = classifySubject(subject, fitted, from, to, TZ, DEFAULT_PARAMS);
    classifyMs += performance.now() - t;
    readings += subject.length;
    events += c.events.filter((e) => e.kind === 'drinking').length;
    tampers += c.tampers.length;
    for (const d of c.days) statuses[d.status]!++;
    results.push(c.days);
    if ((s + 1) % 500 === 0) log(`  ${s + 1} subjects, ${int(readings)} readings`);
  }
  const perSec = readings / (classifyMs / 1000);
  res.add(`classify from scratch: ${int(opts.subjects)} subjects x ${opts.days} days, classifySubject`, int(readings), 'readings');
  res.add('    time in the pure core (generation excluded)', fixed(classifyMs / 1000, 1), 's');
  res.add('    throughput, one core', int(perSec), 'readings/s', `≥ ${int(TARGET.perSec)}`, perSec >= TARGET.perSec);
  res.add('    (generating the readings in memory, not counted)', fixed(genMs / 1000, 1), 's');
  const dayCount = Object.values(statuses).reduce((a, b) => a + b, 0);
  const share = (k: string) => `${fixed((100 * statuses[k]!) / dayCount, 1)} %`;
  res.add('    days: sober / drinking / tamper / not monitored', `${share('sober')} / ${share('drinking')} / ${share('tamper')} / ${share('not_monitored')}`);
  res.add('    drinking events / obstructions found', `${int(events)} / ${int(tampers)}`);

  let breakdown: string[] = [];
  if (opts.breakdown > 0) {
    const n = Math.min(opts.breakdown, opts.subjects);
    const stages = stageBreakdown(n, days, fitted);
    const total = Object.values(stages).reduce((a, b) => a + b, 0);
    breakdown = [`where classification time goes (same steps timed apart, first ${n} subjects):`, ...Object.entries(stages).map(([k, v]) => `    ${k.padEnd(38)} ${fixed((100 * v) / total, 1).padStart(5)} %  ${fixed(v / n, 2)} ms/subject`)];
  }

  const stack = await stackUpWithRetry(log);
  const db = await createBenchDatabase(stack.DATABASE_URL, 0, cleanups);
  log(`storing ${int(dayCount)} day results in ${db.name} with saveDays`);
  const stored = await storeDays(db.pool, results, new Date(days[0]![1]));
  res.add(`store day results (saveDays per subject, 3 at a time): ${int(dayCount)} rows`, fixed(stored.seconds, 1), 's');
  res.add('    with the (subject, month) rollup: rows; months differing from the days', `${int(stored.monthRows)}; ${stored.drift}`, '', '0 differ', stored.drift === 0);
  const secret = randomBytes(32).toString('base64url');
  const app = await buildBenchApp(db.pool, secret);
  cleanups.push({ what: 'fastify app', run: () => app.close() });
  const sober = statuses.sober!;
  const monitored = statuses.sober! + statuses.drinking! + statuses.tamper!;
  // the whole period (whole months when --from is a month start), then the same less 15 days at each end (partial edge months)
  const inner: [string, string] | null = opts.days > 45 ? [days[15]![0], days[days.length - 15]![0]] : null;
  let explain: string[] = [];
  for (const [qFrom, qTo] of [[from, to] as [string, string], ...(inner ? [inner] : [])]) {
    const whole = qFrom === from;
    await settle();
    log(`GET /v1/sobriety?from=${qFrom}&to=${qTo}: ${opts.calls} calls`);
    const q = await measureSobriety(app, db.pool, secret, qFrom, qTo, opts.calls);
    res.add(`GET /v1/sobriety all subjects, ${qFrom} to ${qTo} (analyst, inject): p50`, fixed(q.calls.p50, 1), 'ms');
    res.add(`    p99 of ${q.calls.n} calls (max ${fixed(q.calls.max, 1)})`, fixed(q.calls.p99, 1), 'ms', `< ${TARGET.p99Ms}`, q.calls.p99 < TARGET.p99Ms);
    res.add('    first call (cold)', fixed(q.first, 1), 'ms');
    if (whole) {
      const consistent = q.body.subjects === opts.subjects && q.body.sober_days === sober && q.body.monitored_days === monitored;
      res.add('    answer: subjects, sober/monitored days, rate', `${q.body.subjects}, ${int(q.body.sober_days)}/${int(q.body.monitored_days)}, ${fixed((q.body.rate ?? NaN) * 100, 2)} %`, '', 'as classified', consistent);
      res.add('    response size', int(q.bytes / 1024), 'KiB');
      explain = q.explain;
    } else {
      res.add('    answer: subjects, sober/monitored days', `${q.body.subjects}, ${int(q.body.sober_days)}/${int(q.body.monitored_days)}`);
    }
    res.add('    parts: cohortTotals SQL / pseudonyms / JSON.stringify (medians)', `${fixed(q.sqlMs, 1)} / ${fixed(q.pseudonymsMs, 1)} / ${fixed(q.serializeMs, 1)}`, 'ms');
    res.add('    before the rollup: the same totals from alcohol_days alone (SQL, median)', fixed(q.daysOnlyMs, 1), 'ms', 'same answer', q.daysOnlyMatches);
  }
  return [
    'storage path: plain PostgreSQL (no TimescaleDB on this server); alcohol_days and alcohol_day_months as the migrations create them',
    `- readings generated per subject in memory with the simulator's alcohol models (noise as data/barcrawl): a reading every 30 min (5 while rising), occasional signal gaps and obstructions`,
    '',
    res.render(),
    '',
    ...breakdown,
    '',
    `EXPLAIN (ANALYZE, BUFFERS) of the route's query (cohortTotals, all cohorts, ${from} to ${to}):`,
    ...explain.map((l) => `    ${l}`),
  ].join('\n');
});

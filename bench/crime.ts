import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { stackUpWithRetry, createBenchDatabase, type BenchDatabase } from './common/setup.js';
import { benchOptions, fixed, int, intFlag, Results, runBench } from './common/runner.js';
import { buildApp } from '../app/app.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { createTokenVerifier } from '../platform/http/auth.js';
import { mintDevToken } from '../platform/http/dev-tokens.js';
import { runCrimeMatch } from '../crime/match.job.js';
import { TrailCache } from '../crime/trail-cache.js';
import { loadTrails } from '../crime/trails.repo.js';
import { indexTrails, matchCrimes } from '../crime/match.js';
import { batchCrimes } from '../crime/crime.repo.js';
import { DEFAULT_CRIME_PARAMS } from '../crime/rules.js';
import { copyFixes, crimeCsv, planSubjects, registerSubjects, type Subject } from './crime/data.js';
import { buildGis, compare, gisMatches, ourFixMatches } from './crime/postgis.js';

/**
 * `npm run bench:crime` (issue 13, "Performance"): (a) a nightly batch against 24 h of trails of
 * many GPS subjects spread over England and Wales, end to end from the HTTP upload to the stored
 * results, with the load / index / match split, and PostGIS over the same fixes side by side
 * (same placed/possible-by-fix sets); (b) cost as the batch grows; (c) with fewer subjects, 1, 7
 * and 30 days of stored trails: the time follows the crimes and their windows, not the table.
 */

const USAGE = `usage: npm run bench:crime -- [--subjects N] [--hours H] [--crimes N] [--growth 1000,20000]
  [--days-subjects N] [--days 1,7,30] [--days-crimes N] [--phases abc] [--no-postgis] [--seed N] [--timeout S]
Quick check: --subjects 500 --crimes 500 --growth 200,1000 --days-subjects 50 --days 1,3`;

const opts = benchOptions(
  'bench:crime',
  USAGE,
  {
    subjects: { type: 'string', default: '12000' },
    hours: { type: 'string', default: '24' },
    crimes: { type: 'string', default: '5000' },
    growth: { type: 'string', default: '1000,20000' },
    'days-subjects': { type: 'string', default: '1000' },
    days: { type: 'string', default: '1,7,30' },
    'days-crimes': { type: 'string', default: '1000' },
    phases: { type: 'string', default: 'abc' },
    'no-postgis': { type: 'boolean', default: false },
  },
  { seed: '42', timeout: '14400' },
  (f) => ({
    subjects: intFlag('subjects', f.subjects, 1),
    hours: intFlag('hours', f.hours, 13),
    crimes: intFlag('crimes', f.crimes, 1),
    growth: f.growth.split(',').filter(Boolean).map((s) => intFlag('growth', s, 1)),
    daysSubjects: intFlag('days-subjects', f['days-subjects'], 1),
    days: f.days.split(',').filter(Boolean).map((s) => intFlag('days', s, 1)).sort((a, b) => a - b),
    daysCrimes: intFlag('days-crimes', f['days-crimes'], 1),
    phases: new Set(f.phases.split('')),
    postgis: !f['no-postgis'],
  }),
);

const H = 3_600_000;
const SECRET = 'bench-crime-secret-0123456789abcdef';

runBench('bench:crime', opts.timeoutMs, 0, async ({ cleanups, log }) => {
  const stack = await stackUpWithRetry(log);
  const res = new Results();
  const notes: string[] = [];
  const end = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;
  let batchNo = 0;

  /** An API on a loopback port over `db`; uploads a CSV and runs the match as the worker would. */
  async function service(db: BenchDatabase) {
    const logger = createLogger('warn');
    const app = await buildApp({ pool: db.pool, logger, metrics: createMetrics(), verifyToken: createTokenVerifier({ jwtSecret: SECRET, audience: 'tagwatch' }), readiness: async () => ({}), crimeQueue: null });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push({ what: 'bench api', run: () => app.close() });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const auth = `Bearer ${await mintDevToken(SECRET, 'bench-analyst', 'crime_analyst')}`;
    return async (subjects: Subject[], n: number, from: number, to: number, seed: number, cache: TrailCache | null = null) => {
      const batchId = `BENCH${String.fromCharCode(65 + (batchNo % 26))}${String.fromCharCode(65 + Math.floor(batchNo / 26))}20261201`;
      batchNo++;
      const csv = crimeCsv(subjects, n, from, to, batchId, seed);
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/crime-batches`, { method: 'POST', headers: { authorization: auth, 'content-type': 'text/csv' }, body: csv });
      const body = (await r.json()) as { id: string; run_id: string; accepted: number; errors: unknown[] };
      if (r.status !== 201) throw new Error(`upload answered ${r.status}: ${JSON.stringify(body).slice(0, 300)}`);
      const t1 = performance.now();
      const m = await runCrimeMatch(db.pool, String(body.run_id), undefined, cache);
      const t2 = performance.now();
      return { batchId: String(body.id), runId: String(body.run_id), accepted: body.accepted, matches: m.matches, cached: m.cached, uploadS: (t1 - t0) / 1000, matchS: (t2 - t1) / 1000, totalS: (t2 - t0) / 1000, bytes: csv.length };
    };
  }

  if (opts.phases.has('a') || opts.phases.has('b')) {
    const db = await createBenchDatabase(stack.PG_SUPERUSER_URL, 0, cleanups);
    const subjects = planSubjects(opts.subjects, opts.seed);
    const from = end - opts.hours * H;
    await registerSubjects(db.pool, subjects, from - H);
    log(`loading ${opts.hours} h of fixes of ${opts.subjects} subjects (COPY, primary key rebuilt after)`);
    let t = performance.now();
    await db.pool.query(`ALTER TABLE readings DROP CONSTRAINT readings_pkey`);
    const rows = await copyFixes(db.pool, subjects, from, end);
    const copyS = (performance.now() - t) / 1000;
    t = performance.now();
    await db.pool.query(`SET maintenance_work_mem = '512MB'`);
    await db.pool.query(`ALTER TABLE readings ADD PRIMARY KEY (device_id, stream, ts)`);
    await db.pool.query(`ANALYZE readings`);
    notes.push(`data: ${int(opts.subjects)} subjects, homes uniform over England and Wales (50.7-54.8 N, 3.5 W-0.4 E, about 450 x 270 km), each on a loop of 0.2-3 km around home, one fix a minute for ${opts.hours} h: ${int(rows)} fixes (COPY ${fixed(copyS, 0)} s, primary key ${fixed((performance.now() - t) / 1000, 0)} s); 30 % of subjects have one silence of up to 90 min a day; accuracy 5-30 m (90 %), 30-120 m (8 %), 500-1500 m (2 %)`);
    notes.push('crimes: windows 0-1 h (30 %) or 0-12 h, inside the trails; a quarter on a subject’s path during the window (up to 75 m off), the rest within 5 km of a subject’s home; half on the National Grid, half WGS84');
    const upload = await service(db);
    // the worker's resident trails (crime/trail-cache.ts), loaded as the worker does at start
    log('loading the resident trail cache');
    t = performance.now();
    const cache = new TrailCache({ hours: opts.hours + 2, retentionDays: 2190 });
    await cache.refresh(db.pool);
    const cacheS = (performance.now() - t) / 1000;
    const main = opts.phases.has('a') ? await upload(subjects, opts.crimes, from + H, end, 1, cache) : null;
    if (main) {
      res.add(`(a) ${int(opts.crimes)} crimes x ${int(opts.subjects)} subjects, ${int(rows)} fixes: upload (HTTP, ${fixed(main.bytes / 1024, 0)} KiB CSV) to stored results`, fixed(main.totalS, 1), 's', '< 60 s', main.totalS < 60);
      res.add('    of which the upload (parse, check, convert, store crimes and run, audit)', fixed(main.uploadS, 2), 's');
      res.add(`    of which the run from the resident trails (check unchanged, match, store ${int(main.matches)} placed/possible)`, fixed(main.matchS, 2), 's', main.cached ? 'cache hit' : 'cache MISS', main.cached > 0);
      res.add(`    resident trail cache, loaded before (as the worker does at start and hourly), not timed above: ${int(cache.covered?.fixes ?? 0)} fixes, load + R-trees`, fixed(cacheS, 1), 's');
      // the split of the run, measured again outside the job
      const crimes = await batchCrimes(db.pool, main.batchId);
      const G = DEFAULT_CRIME_PARAMS.max_gap_s * 1000;
      t = performance.now();
      const lo = Math.min(...crimes.map((c) => c.from_at.getTime())) - G;
      const hi = Math.max(...crimes.map((c) => c.to_at.getTime())) + G;
      const { trails } = await loadTrails(db.pool, lo, hi);
      const loadS = (performance.now() - t) / 1000;
      t = performance.now();
      const ix = indexTrails(trails, DEFAULT_CRIME_PARAMS);
      const indexS = (performance.now() - t) / 1000;
      t = performance.now();
      const found = matchCrimes(ix, crimes.map((c) => ({ id: c.id, from: c.from_at.getTime(), to: c.to_at.getTime(), lat: c.lat, lon: c.lon })));
      const matchS = (performance.now() - t) / 1000;
      res.add(`    plain path (no cache), measured apart: load ${int(trails.ts.length)} fixes / build per-hour R-trees / match`, `${fixed(loadS, 1)} / ${fixed(indexS, 1)} / ${fixed(matchS, 2)}`, 's');
      const stored = (await db.pool.query<{ k: string }>(`SELECT crime_id::text || '/' || subject_id || '/' || category AS k FROM crime_matches WHERE run_id = $1`, [main.runId])).rows.map((x) => x.k);
      const plain = new Set(found.map((m) => `${m.crime_id}/${m.subject_id}/${m.decision.category}`));
      const same = stored.filter((k) => plain.has(k)).length;
      res.add('    run from the cache vs the plain path (load, index, match): same (crime, subject, category) / only one side', `${int(same)} / ${int(stored.length - same + plain.size - same)}`, '', 'all same', same === stored.length && same === plain.size);
      res.add('    placed / possible (of which by a reachable pair only)', `${int(found.filter((m) => m.decision.category === 'placed').length)} / ${int(found.filter((m) => m.decision.category === 'possible').length)} (${int(found.filter((m) => m.decision.deciding[0]?.reason === 'reachable').length)})`);
      if (opts.postgis) {
        const admin = new pg.Client({ connectionString: stack.PG_SUPERUSER_URL.replace(/\/[^/]+$/, '/postgres') });
        await admin.connect();
        cleanups.push({ what: 'admin client', run: () => admin.end() });
        log('PostGIS: building the geography table and its GiST (g, ts) index');
        const gis = await buildGis(db.pool, admin, log);
        log('PostGIS: querying');
        await gisMatches(db.pool, main.batchId, DEFAULT_CRIME_PARAMS.radius_m); // warm the cache
        const g = await gisMatches(db.pool, main.batchId, DEFAULT_CRIME_PARAMS.radius_m);
        const ours = await ourFixMatches(db.pool, main.runId);
        const cmp = compare(ours.pairs, g.pairs);
        res.add(`(a') PostGIS: one statement for the batch, GiST (geography, ts), ST_DWithin on the sphere (warm cache)`, fixed(g.seconds, 1), 's');
        res.add('    PostGIS set-up, not timed above: table / GiST index', `${fixed(gis.buildS, 0)} / ${fixed(gis.indexS, 0)}`, 's');
        res.add('    tagwatch run from the resident trails (check + match + store) vs PostGIS query', `${fixed(main.matchS / g.seconds, 2)}x`, 'of PostGIS', '≤ 1x', main.matchS <= g.seconds);
        res.add('    tagwatch plain path (load + index + match, no store) vs PostGIS query', `${fixed((loadS + indexS + matchS) / g.seconds, 2)}x`, 'of PostGIS');
        res.add('    placed/possible-by-fix pairs: same / only tagwatch / only PostGIS / category differs', `${int(cmp.same)} / ${cmp.onlyA.length} / ${cmp.onlyB.length} / ${cmp.differ.length}`, '', 'all same', cmp.onlyA.length + cmp.onlyB.length + cmp.differ.length === 0);
        if (cmp.onlyA.length + cmp.onlyB.length + cmp.differ.length) notes.push(`differences: ${[...cmp.onlyA.slice(0, 5), ...cmp.onlyB.slice(0, 5), ...cmp.differ.slice(0, 5)].join('; ')}`);
        notes.push(`tagwatch's possible by a reachable pair only (the gap rule, not asked of PostGIS): ${int(ours.reachableOnly)}`);
      }
    }
    if (opts.phases.has('b')) {
      for (const n of opts.growth) {
        log(`(b) ${n} crimes`);
        const r = await upload(subjects, n, from + H, end, 100 + n, cache);
        res.add(`(b) ${int(n)} crimes: upload to stored results (run alone), resident trails`, `${fixed(r.totalS, 1)} (${fixed(r.matchS, 2)})`, 's', r.cached ? 'cache hit' : 'cache MISS', r.cached > 0);
      }
    }
  }

  if (opts.phases.has('c')) {
    const db = await createBenchDatabase(stack.PG_SUPERUSER_URL, 0, cleanups);
    const subjects = planSubjects(opts.daysSubjects, opts.seed + 1);
    const maxDays = opts.days[opts.days.length - 1]!;
    await registerSubjects(db.pool, subjects, end - maxDays * 24 * H - H);
    const upload = await service(db);
    let loaded = 0;
    let stored = 0;
    for (const d of opts.days) {
      log(`(c) ${d} days of trails`);
      stored += await copyFixes(db.pool, subjects, end - d * 24 * H, end - loaded * 24 * H);
      loaded = d;
      await db.pool.query('ANALYZE readings');
      const plain = await upload(subjects, opts.daysCrimes, end - 23 * H, end, 7);
      res.add(`(c) ${int(opts.daysSubjects)} subjects, ${d} day(s) stored (${int(stored)} fixes), ${int(opts.daysCrimes)} crimes in the last day, plain path`, `${fixed(plain.totalS, 2)} (${fixed(plain.matchS, 2)})`, 's');
      const t = performance.now();
      const cache = new TrailCache({ hours: 26, retentionDays: 2190 });
      await cache.refresh(db.pool);
      const loadS = (performance.now() - t) / 1000;
      const r = await upload(subjects, opts.daysCrimes, end - 23 * H, end, 8, cache);
      res.add(`    the same with resident trails (cache load of the last 26 h apart: ${fixed(loadS, 1)} s)`, `${fixed(r.totalS, 2)} (${fixed(r.matchS, 2)})`, 's', r.cached ? 'cache hit' : 'cache MISS', r.cached > 0);
    }
  }
  const load = (await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ');
  return [
    `storage path: ${'plain PostgreSQL'}; machine: 2 cores shared with other sessions (load average at the end: ${load})`,
    ...notes.map((n) => `- ${n}`),
    '',
    res.render(),
    '',
    '(b), (c): total seconds, the run alone in brackets; the worker’s BullMQ hop is not in these figures (the run is called directly after the upload)',
    '(a), (b) run from the resident trail cache loaded before the upload; the plain path (no cache) is measured apart in (a) and in (c)',
  ].join('\n');
});

import type pg from 'pg';
import type { FastifyInstance } from 'fastify';
import type { DayResult } from '../../alcohol/days.js';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { cohortTotals, cohortTotalsFromDays, cohortTotalsQuery, ensureParams, pseudonymFor, rollupDrift, saveDays } from '../../alcohol/alcohol.repo.js';
import { buildApp } from '../../app/app.js';
import { createTokenVerifier } from '../../platform/http/auth.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { summarize, type Summary } from '../common/runner.js';

/**
 * The second half of bench:alcohol: the day results stored with the product's saveDays in a
 * fresh database (which keeps the (subject, month) rollup alcohol_day_months with them), then
 * GET /v1/sobriety for everyone through the real Fastify app (buildApp + inject, as an analyst),
 * what the time is spent on, and the same totals counted from alcohol_days alone (the query the
 * route ran before the rollup) for comparison.
 */

export const COHORTS = ['fixed', 'flex', 'free'] as const;

/** Subjects, alcohol devices fitted from `fittedFrom`, and every subject's day results (saveDays, 3 at a time). */
export async function storeDays(pool: pg.Pool, results: DayResult[][], fittedFrom: Date): Promise<{ seconds: number; monthRows: number; drift: number }> {
  const ids = results.map((_, i) => `alc-${String(i).padStart(5, '0')}`);
  await pool.query(
    `INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids)
     SELECT id, 'Subject ' || id, (ARRAY['fixed','flex','free'])[1 + (o % 3)::int], 'amber', ARRAY['om-' || (o % 40)::int]
       FROM unnest($1::text[]) WITH ORDINALITY AS t(id, o)`,
    [ids],
  );
  await pool.query(`INSERT INTO devices (id, kind) SELECT 'tag-' || id, 'alcohol' FROM unnest($1::text[]) id`, [ids]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT id, 'tag-' || id, $2 FROM unnest($1::text[]) id`, [ids, fittedFrom]);
  const version = await ensureParams(pool, DEFAULT_PARAMS);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 3 }, async () => {
      while (next < ids.length) {
        const i = next++;
        await saveDays(pool, ids[i]!, results[i]!, version);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  // what autovacuum would have done by the time analysts query: statistics and the visibility map
  await pool.query('VACUUM ANALYZE alcohol_days');
  await pool.query('VACUUM ANALYZE alcohol_day_months');
  await pool.query('VACUUM ANALYZE subjects');
  const monthRows = (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM alcohol_day_months')).rows[0]!.n;
  return { seconds, monthRows, drift: (await rollupDrift(pool)).length };
}

export interface QueryResult {
  first: number;
  calls: Summary;
  body: { subjects: number; sober_days: number; monitored_days: number; rate: number | null };
  bytes: number;
  /** the route's parts, median ms of 10 runs each */
  sqlMs: number;
  pseudonymsMs: number;
  serializeMs: number;
  explain: string[];
  rows: number;
  /** before the rollup: the same per-subject totals counted from alcohol_days alone, median ms, and whether they match */
  daysOnlyMs: number;
  daysOnlyMatches: boolean;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

export async function buildBenchApp(pool: pg.Pool, secret: string): Promise<FastifyInstance> {
  return buildApp({
    pool,
    logger: createLogger('silent'),
    metrics: createMetrics(),
    verifyToken: createTokenVerifier({ jwtSecret: secret }),
    readiness: async () => ({}),
    feed: null,
  });
}

/** `calls` sequential GET /v1/sobriety (all subjects, [from, to)) after 3 warm-up calls, plus the parts. */
export async function measureSobriety(app: FastifyInstance, pool: pg.Pool, secret: string, from: string, to: string, calls: number): Promise<QueryResult> {
  const token = await mintDevToken(secret, 'analyst-bench', 'analyst');
  const url = `/v1/sobriety?from=${from}&to=${to}`;
  const call = async () => {
    const t = performance.now();
    const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    const ms = performance.now() - t;
    if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode} ${res.body.slice(0, 300)}`);
    return { ms, res };
  };
  const first = await call();
  await call();
  await call();
  const times: number[] = [];
  for (let i = 0; i < calls; i++) times.push((await call()).ms);
  const body = first.res.json() as QueryResult['body'];

  const sql: number[] = [];
  let rows: Awaited<ReturnType<typeof cohortTotals>> = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    rows = await cohortTotals(pool, null, from, to);
    sql.push(performance.now() - t);
  }
  const key = 'k'.repeat(64);
  const pseud: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    for (const r of rows) pseudonymFor(key, 'analyst-bench', r.subject_id);
    pseud.push(performance.now() - t);
  }
  const ser: number[] = [];
  const parsed = first.res.json();
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    JSON.stringify(parsed);
    ser.push(performance.now() - t);
  }
  const q = cohortTotalsQuery(null, from, to);
  const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${q.text}`, q.values);
  const before = await daysOnly(pool, from, to, rows);
  return {
    ...before,
    first: first.ms,
    calls: summarize(times),
    body,
    bytes: first.res.body.length,
    sqlMs: median(sql),
    pseudonymsMs: median(pseud),
    serializeMs: median(ser),
    explain: plan.rows.map((r) => r['QUERY PLAN']),
    rows: rows.length,
  };
}

/** The totals as the route computed them before the rollup: counted from alcohol_days alone (median of 10 runs). */
async function daysOnly(pool: pg.Pool, from: string, to: string, expected: Awaited<ReturnType<typeof cohortTotals>>) {
  const times: number[] = [];
  let rows: typeof expected = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    rows = await cohortTotalsFromDays(pool, null, from, to);
    times.push(performance.now() - t);
  }
  const same = rows.length === expected.length && rows.every((r, i) => r.subject_id === expected[i]!.subject_id && r.sober_days === expected[i]!.sober_days && r.monitored_days === expected[i]!.monitored_days);
  return { daysOnlyMs: median(times), daysOnlyMatches: same };
}

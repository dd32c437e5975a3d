import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate, storageMode, withTransaction, type Queryable } from '../../platform/db.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { localDays, type DayResult, type DayStatus } from '../../alcohol/days.js';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { evaluateDeviceAlcohol } from '../../alcohol/evaluate.job.js';
import { cohortTotals, cohortTotalsFromDays, ensureParams, rollupDrift, saveDays } from '../../alcohol/alcohol.repo.js';
import { createRng, hashSeed, type Rng } from '../../sim/rng.js';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { startTimescale, type TimescaleHandle } from '../support/timescale.js';

// alcohol_day_months (the per subject and month rollup behind GET /v1/sobriety) against the day
// table it summarises: after writes in pieces, rewrites, the evaluate job and erasure, the
// rollup-backed totals must equal the totals counted from alcohol_days for any period, on plain
// PostgreSQL and on the TimescaleDB path (PGlite: one connection, messages under 64 KB).

const SEED = 20261202;
const COHORTS = ['fixed', 'flex', 'free'] as const;
const STATUSES: DayStatus[] = ['sober', 'sober', 'sober', 'sober', 'drinking', 'tamper', 'not_monitored'];
const SPAN: [string, string] = ['2025-11-20', '2027-02-10']; // two year ends, four DST changes, a leap-free February
const ALL_DATES = localDays(SPAN[0], SPAN[1], 'UTC').map(([d]) => d);

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let ts: TimescaleHandle;
let tsDb: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  ts = await startTimescale();
  tsDb = new pg.Client({ connectionString: ts.url });
  await tsDb.connect();
  await migrate(tsDb);
});

afterAll(async () => {
  await tsDb?.end();
  await ts?.stop();
  await svc?.stop();
  await db?.drop();
});

const addDays = (date: string, n: number) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86400_000).toISOString().slice(0, 10);

function dayResult(rng: Rng, date: string): DayResult {
  const status = rng.pick(STATUSES);
  return { date, status, covered_minutes: status === 'not_monitored' ? rng.int(0, 1199) : rng.int(1200, 1440), drinking_events: status === 'drinking' ? 1 : 0, tampers: status === 'tamper' ? 1 : 0 };
}

/** Subjects R-00.. with day results over SPAN (some days missing), saved in pieces of at most 60 days in random order. */
async function seed(q: Queryable, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `R-${String(i).padStart(2, '0')}`);
  await q.query(
    `INSERT INTO subjects (id, display_name, cohort, rag) SELECT id, 'Person ' || id, (ARRAY['fixed','flex','free'])[1 + (o % 3)::int], 'amber'
       FROM unnest($1::text[]) WITH ORDINALITY t(id, o)`,
    [ids],
  );
  const version = await ensureParams(q, DEFAULT_PARAMS);
  for (const id of ids) {
    const rng = createRng(hashSeed(SEED, 'seed', id));
    // a subject fitted for part of the span only, with a few days without a result
    const first = rng.int(0, 120);
    const last = ALL_DATES.length - rng.int(0, 120);
    const days = ALL_DATES.slice(first, last).filter(() => !rng.chance(0.05)).map((d) => dayResult(rng, d));
    const pieces: DayResult[][] = [];
    for (let i = 0; i < days.length; ) {
      const len = rng.int(1, 60);
      pieces.push(days.slice(i, i + len));
      i += len;
    }
    pieces.sort(() => rng.next() - 0.5);
    for (const p of pieces) await saveDays(q, id, p, version);
  }
  return ids;
}

/** Rewrites windows of 1 to 40 days of every subject with other statuses (some days new), as a re-evaluation does. */
async function rewrite(q: Queryable, ids: string[], round: number): Promise<number> {
  const version = await ensureParams(q, DEFAULT_PARAMS);
  let written = 0;
  for (const id of ids) {
    const rng = createRng(hashSeed(SEED, 'rewrite', round, id));
    for (let w = 0; w < 3; w++) {
      const start = rng.int(0, ALL_DATES.length - 41);
      const days = ALL_DATES.slice(start, start + rng.int(1, 40)).map((d) => dayResult(rng, d));
      await saveDays(q, id, days, version);
      written += days.length;
    }
  }
  return written;
}

/** Periods: fixed ones (whole months, one month, single days, beyond the data) and random ones, some on month starts. */
function periods(round: number, n: number): Array<[string, string]> {
  const rng = createRng(hashSeed(SEED, 'periods', round));
  const out: Array<[string, string]> = [
    [SPAN[0], SPAN[1]],
    ['2026-01-01', '2027-01-01'],
    ['2026-03-01', '2026-04-01'],
    ['2026-03-15', '2026-03-16'],
    ['2026-03-31', '2026-04-02'],
    ['2026-10-01', '2026-10-31'],
    ['2026-02-01', '2026-02-28'],
    ['2025-12-31', '2026-02-01'],
    ['2024-01-01', '2025-12-01'],
    ['2027-02-01', '2027-06-01'],
  ];
  for (let i = 0; i < n; i++) {
    let from = addDays(SPAN[0], rng.int(-30, ALL_DATES.length));
    let to = addDays(from, rng.pick([1, 2, 10, 31, 45, 90, 200, 400, 700]) + rng.int(0, 20));
    if (rng.chance(0.3)) from = `${from.slice(0, 8)}01`;
    if (rng.chance(0.3)) to = `${to.slice(0, 8)}01`;
    if (to > from) out.push([from, to]);
  }
  return out;
}

/** The rollup matches the days month by month, and the rollup-backed totals equal the day-table totals for every period and cohort. */
async function expectConsistent(q: Queryable, round: number, n = 30): Promise<number> {
  expect(await rollupDrift(q)).toEqual([]);
  let compared = 0;
  for (const [from, to] of periods(round, n)) {
    for (const cohort of [null, ...COHORTS]) {
      const expected = await cohortTotalsFromDays(q, cohort, from, to);
      expect({ from, to, cohort, rows: await cohortTotals(q, cohort, from, to) }).toEqual({ from, to, cohort, rows: expected });
      compared += expected.length;
    }
  }
  return compared;
}

describe('alcohol_day_months on plain PostgreSQL', () => {
  let ids: string[];

  it('is written with the days: equal to the day table for any period, whole or partial months', async () => {
    expect(await storageMode(db.pool)).toBe('postgresql');
    ids = await seed(db.pool, 12);
    const months = await db.pool.query<{ n: number; sober: number }>(`SELECT count(*)::int n, sum(sober_days)::int sober FROM alcohol_day_months`);
    expect(months.rows[0]!.n).toBeGreaterThan(12 * 10);
    expect(months.rows[0]!.sober).toBeGreaterThan(1000);
    expect(await expectConsistent(db.pool, 1)).toBeGreaterThan(500);
  });

  it('stays equal after re-evaluations rewrite days across month edges (inside transactions, as the worker does)', async () => {
    const before = await db.pool.query(`SELECT subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days FROM alcohol_day_months ORDER BY 1, 2`);
    for (let round = 0; round < 3; round++) {
      await withTransaction(db.pool, async (client) => {
        expect(await rewrite(client, ids, round)).toBeGreaterThan(0);
      });
      await expectConsistent(db.pool, 10 + round, 15);
    }
    const after = await db.pool.query(`SELECT subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days FROM alcohol_day_months ORDER BY 1, 2`);
    expect(after.rows).not.toEqual(before.rows); // the rewrites did change counts
  });

  it('rolls back with the days: a failed transaction leaves both as they were', async () => {
    const snapshot = async () => (await db.pool.query(`SELECT * FROM alcohol_day_months ORDER BY 1, 2`)).rows;
    const before = await snapshot();
    await expect(
      withTransaction(db.pool, async (client) => {
        await rewrite(client, ids, 99);
        throw new Error('evaluation failed half-way');
      }),
    ).rejects.toThrow(/half-way/);
    expect(await snapshot()).toEqual(before);
    expect(await rollupDrift(db.pool)).toEqual([]);
  });

  it('detects a day changed behind saveDays’s back, and the next save of that month repairs it', async () => {
    const changed = await db.pool.query<{ subject_id: string; date: string }>(
      `UPDATE alcohol_days SET status = 'drinking'
        WHERE (subject_id, date) = (SELECT subject_id, date FROM alcohol_days WHERE status = 'sober' AND date >= '2026-06-01' ORDER BY subject_id, date LIMIT 1)
        RETURNING subject_id, to_char(date, 'YYYY-MM-DD') AS date`,
    );
    const { subject_id, date } = changed.rows[0]!;
    const month = `${date.slice(0, 8)}01`;
    expect(await rollupDrift(db.pool)).toEqual([{ subject_id, month, rollup: expect.any(Array), days: expect.any(Array) }]);
    const next = (await db.pool.query(`SELECT to_char(($1::date + interval '1 month')::date, 'YYYY-MM-DD') AS d`, [month])).rows[0].d as string;
    expect(await cohortTotals(db.pool, null, month, next)).not.toEqual(await cohortTotalsFromDays(db.pool, null, month, next));
    const other = (await db.pool.query(`SELECT to_char(date, 'YYYY-MM-DD') AS date FROM alcohol_days WHERE subject_id = $1 AND date >= $2 AND date < $3 AND date <> $4 LIMIT 1`, [subject_id, month, next, date])).rows[0].date as string;
    await saveDays(db.pool, subject_id, [{ date: other, status: 'sober', covered_minutes: 1440, drinking_events: 0, tampers: 0 }], await ensureParams(db.pool, DEFAULT_PARAMS));
    expect(await rollupDrift(db.pool)).toEqual([]);
  });

  it('GET /v1/sobriety answers from it what the day table gives, for analysts and supervisors; managers are refused', async () => {
    for (const [from, to] of periods(20, 8)) {
      for (const cohort of [null, 'flex']) {
        const rows = await cohortTotalsFromDays(db.pool, cohort, from, to);
        const sober = rows.reduce((a, r) => a + r.sober_days, 0);
        const monitored = rows.reduce((a, r) => a + r.monitored_days, 0);
        for (const who of [['analyst', 'an-1'], ['supervisor', 'sup-1']] as Array<Parameters<typeof authHeader>>) {
          const r = await svc.app.inject({ method: 'GET', url: `/v1/sobriety?from=${from}&to=${to}${cohort ? `&cohort=${cohort}` : ''}`, headers: await authHeader(...who) });
          expect(r.statusCode).toBe(200);
          const body = r.json();
          expect({ from, to, cohort, subjects: body.subjects, sober: body.sober_days, monitored: body.monitored_days }).toEqual({ from, to, cohort, subjects: rows.length, sober, monitored });
          expect(body.rows.map((x: { cohort: string; sober_days: number; monitored_days: number }) => [x.cohort, x.sober_days, x.monitored_days])).toEqual(rows.map((x) => [x.cohort, x.sober_days, x.monitored_days]));
          expect(JSON.stringify(body)).not.toMatch(/R-\d\d|Person/);
        }
      }
    }
    const om = await svc.app.inject({ method: 'GET', url: '/v1/sobriety?from=2026-01-01&to=2027-01-01', headers: await authHeader('offender_manager', 'om-1') });
    expect(om.statusCode).toBe(403);
  });

  it('erasure (DELETE /v1/subjects/:id) removes the subject’s month rows with its days', async () => {
    const victim = ids[4]!;
    const had = await db.pool.query(`SELECT count(*)::int n FROM alcohol_day_months WHERE subject_id = $1`, [victim]);
    expect(had.rows[0].n).toBeGreaterThan(10);
    const r = await svc.app.inject({ method: 'DELETE', url: `/v1/subjects/${victim}`, headers: await authHeader('admin'), payload: { reason: 'court order 2026/7' } });
    expect(r.statusCode).toBe(200);
    const left = await db.pool.query(`SELECT (SELECT count(*)::int FROM alcohol_day_months WHERE subject_id = $1) AS months, (SELECT count(*)::int FROM alcohol_days WHERE subject_id = $1) AS days`, [victim]);
    expect(left.rows[0]).toEqual({ months: 0, days: 0 });
    await expectConsistent(db.pool, 30, 10);
    expect((await cohortTotals(db.pool, null, SPAN[0], SPAN[1])).map((x) => x.subject_id)).toEqual(ids.filter((x) => x !== victim));
  });

  it('follows the evaluate job when late readings turn a past sober day into a drinking day', async () => {
    const pool = db.pool;
    await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag) VALUES ('J-S1', 'Person J', 'fixed', 'amber')`);
    await pool.query(`INSERT INTO devices (id, kind) VALUES ('J-D1', 'alcohol')`);
    await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('J-S1', 'J-D1', '2026-10-27T00:00:00Z')`);
    // a reading every 30 minutes, sober, from 27 October to 4 November (the month edge in between)
    await pool.query(
      `INSERT INTO readings (device_id, stream, ts, tac, temp_c, ir, data)
       SELECT 'J-D1', 'alcohol', t, 0, 32 + sin(extract(epoch FROM t) / 3600), 1.1, '{}'::jsonb
         FROM generate_series('2026-10-27T00:00:00Z'::timestamptz, '2026-11-04T00:00:00Z', interval '30 minutes') t`,
    );
    const deps = { pool, logger: createLogger('silent'), metrics: createMetrics(), params: DEFAULT_PARAMS };
    const now = Date.parse('2026-11-04T00:10:00Z');
    await evaluateDeviceAlcohol(deps, 'J-D1', Date.parse('2026-10-27T00:00:00Z'), now);
    const month = async () => (await pool.query(`SELECT to_char(month, 'YYYY-MM') m, sober_days, drinking_days FROM alcohol_day_months WHERE subject_id = 'J-S1' ORDER BY month`)).rows;
    const first = await month();
    expect(first).toEqual([
      { m: '2026-10', sober_days: 5, drinking_days: 0 },
      { m: '2026-11', sober_days: 3, drinking_days: 0 },
    ]);
    // late readings: a drinking run on the evening of 31 October, between the stored ones
    await pool.query(
      `INSERT INTO readings (device_id, stream, ts, tac, temp_c, ir, data)
       SELECT 'J-D1', 'alcohol', t, 0.06, 32, 1.1, '{}'::jsonb
         FROM generate_series('2026-10-31T19:15:00Z'::timestamptz, '2026-10-31T22:15:00Z', interval '30 minutes') t`,
    );
    await evaluateDeviceAlcohol(deps, 'J-D1', Date.parse('2026-10-31T19:15:00Z'), now);
    expect(await month()).toEqual([
      { m: '2026-10', sober_days: 4, drinking_days: 1 },
      { m: '2026-11', sober_days: 3, drinking_days: 0 },
    ]);
    expect(await rollupDrift(pool)).toEqual([]);
    for (const [from, to] of [['2026-10-01', '2026-12-01'], ['2026-10-31', '2026-11-02'], ['2026-10-15', '2026-11-15']] as const) {
      expect(await cohortTotals(pool, 'fixed', from, to)).toEqual(await cohortTotalsFromDays(pool, 'fixed', from, to));
    }
  });
});

describe('alcohol_day_months on the TimescaleDB path (PGlite)', () => {
  it('is the same table, kept equal to the days through writes, rewrites and erasure, with the same answers as plain PostgreSQL', async () => {
    expect(await storageMode(tsDb)).toBe('timescaledb');
    const ids = await seed(tsDb, 6);
    await expectConsistent(tsDb, 1, 15);
    await tsDb.query('BEGIN');
    await rewrite(tsDb, ids, 0);
    await tsDb.query('COMMIT');
    await expectConsistent(tsDb, 10, 15);
    // a plain PostgreSQL database given the same writes answers the same
    const plain = await createTestDatabase();
    try {
      await seed(plain.pool, 6);
      await rewrite(plain.pool, ids, 0);
      for (const [from, to] of periods(40, 10)) {
        expect(await cohortTotals(tsDb, null, from, to)).toEqual(await cohortTotals(plain.pool, null, from, to));
      }
    } finally {
      await plain.drop();
    }
    await tsDb.query(`DELETE FROM subjects WHERE id = $1`, [ids[2]]);
    expect((await tsDb.query(`SELECT count(*)::int n FROM alcohol_day_months WHERE subject_id = $1`, [ids[2]])).rows[0].n).toBe(0);
    await expectConsistent(tsDb, 50, 10);
  });
});

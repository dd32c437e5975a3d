import { createHmac } from 'node:crypto';
import type { Queryable } from '../platform/db.js';
import type { AlcoholReadingIn } from './classify.js';
import { monthSplit, type DayResult, type Interval } from './days.js';
import { paramsVersion, type AlcoholParams } from './params.js';

/** Stores a parameter set once; returns its version. */
export async function ensureParams(db: Queryable, p: AlcoholParams): Promise<string> {
  const version = paramsVersion(p);
  await db.query(`INSERT INTO alcohol_params (version, params) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING`, [version, JSON.stringify(p)]);
  return version;
}

/** Intervals when an alcohol-capable device was fitted to the subject, overlapping [from, to). */
export async function fittedIntervals(db: Queryable, subjectId: string, from: Date, to: Date): Promise<Interval[]> {
  const r = await db.query<{ start_at: Date; end_at: Date | null }>(
    `SELECT a.start_at, a.end_at FROM assignments a JOIN devices d ON d.id = a.device_id
      WHERE a.subject_id = $1 AND d.kind IN ('alcohol', 'combined') AND a.start_at < $3 AND coalesce(a.end_at, 'infinity') > $2
      ORDER BY a.start_at`,
    [subjectId, from, to],
  );
  return r.rows.map((x) => [x.start_at.getTime(), x.end_at ? x.end_at.getTime() : Number.MAX_SAFE_INTEGER]);
}

/** The subject's alcohol readings in [from, to), through the assignments covering each. */
export async function subjectAlcoholReadings(db: Queryable, subjectId: string, from: Date, to: Date): Promise<Array<AlcoholReadingIn & { id: string; received_at: number }>> {
  const r = await db.query<{ device_id: string; ts: Date; tac: number; temp_c: number; ir: number | null; received_at: Date }>(
    `SELECT r.device_id, r.ts, r.tac, r.temp_c, r.ir, r.received_at
       FROM assignments a
       JOIN readings r ON r.device_id = a.device_id AND r.stream = 'alcohol'
        AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3)
      WHERE a.subject_id = $1
      ORDER BY r.ts`,
    [subjectId, from, to],
  );
  return r.rows.map((x) => ({ id: `${x.device_id}@${x.ts.toISOString()}`, ts: x.ts.getTime(), tac: x.tac, temp_c: x.temp_c, ir: x.ir ?? undefined, received_at: x.received_at.getTime() }));
}

/**
 * Replaces the day results of a subject for the given days (one row per subject and date) and, in
 * the same statement, the subject's rows of alcohol_day_months for every month those days fall in,
 * recomputed from the month's days as they are after the write (the stored days it does not
 * replace, and the new ones): one statement, so atomic on its own and inside the caller's
 * transaction. Writers of one subject must not run concurrently (the evaluate job holds the
 * subject's advisory lock), or the month counts could miss the other writer's days.
 */
export async function saveDays(db: Queryable, subjectId: string, days: DayResult[], version: string): Promise<void> {
  if (days.length === 0) return;
  await db.query(
    `WITH new AS (
       SELECT d.date::date AS date, d.status, d.covered_minutes, d.drinking_events, d.tampers
         FROM jsonb_to_recordset($2::jsonb) AS d(date text, status text, covered_minutes int, drinking_events int, tampers int)
     ), saved AS (
       INSERT INTO alcohol_days (subject_id, date, status, covered_minutes, drinking_events, tampers, params_version)
       SELECT $1, date, status, covered_minutes, drinking_events, tampers, $3 FROM new
       ON CONFLICT (subject_id, date) DO UPDATE SET status = excluded.status, covered_minutes = excluded.covered_minutes,
         drinking_events = excluded.drinking_events, tampers = excluded.tampers, params_version = excluded.params_version, computed_at = now()
     ), months AS (
       SELECT DISTINCT date_trunc('month', date::timestamp)::date AS month FROM new
     ), month_days AS (
       SELECT date, status FROM new
       UNION ALL
       SELECT d.date, d.status FROM months m JOIN alcohol_days d
           ON d.subject_id = $1 AND d.date >= m.month AND d.date < (m.month + interval '1 month')::date
        WHERE d.date >= (SELECT min(month) FROM months) AND d.date < (SELECT max(month) + interval '1 month' FROM months)
          AND d.date NOT IN (SELECT date FROM new)
     )
     INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days)
     SELECT $1, date_trunc('month', date::timestamp)::date,
            count(*) FILTER (WHERE status = 'sober'), count(*) FILTER (WHERE status = 'drinking'),
            count(*) FILTER (WHERE status = 'tamper'), count(*) FILTER (WHERE status = 'not_monitored')
       FROM month_days GROUP BY 2
     ON CONFLICT (subject_id, month) DO UPDATE SET sober_days = excluded.sober_days, drinking_days = excluded.drinking_days,
       tamper_days = excluded.tamper_days, not_monitored_days = excluded.not_monitored_days`,
    [subjectId, JSON.stringify(days), version],
  );
}

export interface StoredDay {
  date: string;
  status: DayResult['status'];
  params_version: string;
}

export async function loadDays(db: Queryable, subjectId: string, fromDate: string, toDate: string): Promise<StoredDay[]> {
  const r = await db.query<StoredDay>(
    `SELECT to_char(date, 'YYYY-MM-DD') AS date, status, params_version FROM alcohol_days
      WHERE subject_id = $1 AND date >= $2::date AND date < $3::date ORDER BY date`,
    [subjectId, fromDate, toDate],
  );
  return r.rows;
}

export interface SubjectTotals {
  subject_id: string;
  cohort: string;
  sober_days: number;
  monitored_days: number;
}

/**
 * Per-subject sober and monitored day counts over [from, to) for a cohort or everyone, one
 * aggregate query: the whole months inside the period from alcohol_day_months, the partial months
 * at its edges from alcohol_days. A subject is listed when it has a day result in the period.
 */
export async function cohortTotals(db: Queryable, cohort: string | null, fromDate: string, toDate: string): Promise<SubjectTotals[]> {
  const q = cohortTotalsQuery(cohort, fromDate, toDate);
  return (await db.query<SubjectTotals>(q.text, q.values)).rows;
}

/** The SQL of cohortTotals and its parameters (bench:alcohol EXPLAINs it). */
export function cohortTotalsQuery(cohort: string | null, fromDate: string, toDate: string): { text: string; values: Array<string | null> } {
  const { months, edges } = monthSplit(fromDate, toDate);
  return {
    // each part summed per subject before the join: 2 rows per subject to join instead of one per month and edge day
    text: `SELECT x.subject_id, s.cohort, sum(x.sober)::int AS sober_days, sum(x.monitored)::int AS monitored_days
       FROM (SELECT subject_id, sum(sober_days)::int AS sober, sum(sober_days + drinking_days + tamper_days)::int AS monitored,
                    sum(sober_days + drinking_days + tamper_days + not_monitored_days)::int AS days
               FROM alcohol_day_months WHERE month >= $2::date AND month < $3::date
              GROUP BY subject_id
             UNION ALL
             SELECT subject_id, count(*) FILTER (WHERE status = 'sober')::int, count(*) FILTER (WHERE status <> 'not_monitored')::int, count(*)::int
               FROM alcohol_days WHERE (date >= $4::date AND date < $5::date) OR (date >= $6::date AND date < $7::date)
              GROUP BY subject_id) x
       JOIN subjects s ON s.id = x.subject_id
      WHERE $1::text IS NULL OR s.cohort = $1
      GROUP BY x.subject_id, s.cohort
     HAVING sum(x.days) > 0
      ORDER BY x.subject_id`,
    values: [cohort, ...months, ...edges[0], ...edges[1]],
  };
}

/** cohortTotals from the day table alone (the reference the rollup must agree with: tests and bench:alcohol). */
export async function cohortTotalsFromDays(db: Queryable, cohort: string | null, fromDate: string, toDate: string): Promise<SubjectTotals[]> {
  const r = await db.query<SubjectTotals>(
    `SELECT d.subject_id, s.cohort,
            count(*) FILTER (WHERE d.status = 'sober')::int AS sober_days,
            count(*) FILTER (WHERE d.status <> 'not_monitored')::int AS monitored_days
       FROM alcohol_days d JOIN subjects s ON s.id = d.subject_id
      WHERE d.date >= $2::date AND d.date < $3::date AND ($1::text IS NULL OR s.cohort = $1)
      GROUP BY d.subject_id, s.cohort
      ORDER BY d.subject_id`,
    [cohort, fromDate, toDate],
  );
  return r.rows;
}

/**
 * (subject, month) rows where alcohol_day_months differs from the counts of alcohol_days, with
 * both sides' counts (null where a side has no row): empty when the rollup is consistent.
 */
export async function rollupDrift(db: Queryable): Promise<Array<{ subject_id: string; month: string; rollup: number[] | null; days: number[] | null }>> {
  const r = await db.query(
    `WITH d AS (
       SELECT subject_id, date_trunc('month', date::timestamp)::date AS month,
              ARRAY[count(*) FILTER (WHERE status = 'sober'), count(*) FILTER (WHERE status = 'drinking'),
                    count(*) FILTER (WHERE status = 'tamper'), count(*) FILTER (WHERE status = 'not_monitored')]::int[] AS counts
         FROM alcohol_days GROUP BY 1, 2
     ), m AS (
       SELECT subject_id, month, ARRAY[sober_days, drinking_days, tamper_days, not_monitored_days] AS counts FROM alcohol_day_months
     )
     SELECT coalesce(m.subject_id, d.subject_id) AS subject_id, to_char(coalesce(m.month, d.month), 'YYYY-MM-DD') AS month,
            m.counts AS rollup, d.counts AS days
       FROM m FULL JOIN d ON d.subject_id = m.subject_id AND d.month = m.month
      WHERE m.counts IS DISTINCT FROM d.counts
      ORDER BY 1, 2`,
  );
  return r.rows;
}

/** The pseudonymous reference of a subject for one analyst: stable for that analyst, unlinkable across analysts. */
export function pseudonymFor(key: string, analystId: string, subjectId: string): string {
  return createHmac('sha256', key).update(`${analystId}\u0000${subjectId}`).digest('base64url').slice(0, 16);
}

export async function pseudonymKey(db: Queryable): Promise<string> {
  const r = await db.query<{ key: string }>(`SELECT key FROM pseudonym_key`);
  return r.rows[0]!.key;
}

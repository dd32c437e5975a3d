import { createHmac } from 'node:crypto';
import type { Queryable } from '../platform/db.js';
import type { AlcoholReadingIn } from './classify.js';
import { monthSplit, type DayResult, type EventReview, type Interval } from './days.js';
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
 * The tail of a statement that rewrites the subject's ($1) rows of alcohol_day_months for every
 * month the days of CTE `new` (date, status, reviewed_status, pending_events) fall in, recomputed
 * from those days and the stored days of those months not in `new`: a CTE that writes the days
 * cannot be read back in the same statement, so the new values come from `new` itself.
 */
const MONTH_ROLLUP = `months AS (
       SELECT DISTINCT date_trunc('month', date::timestamp)::date AS month FROM new
     ), month_days AS (
       SELECT date, status, reviewed_status, pending_events FROM new
       UNION ALL
       SELECT d.date, d.status, d.reviewed_status, d.pending_events FROM months m JOIN alcohol_days d
           ON d.subject_id = $1 AND d.date >= m.month AND d.date < (m.month + interval '1 month')::date
        WHERE d.date >= (SELECT min(month) FROM months) AND d.date < (SELECT max(month) + interval '1 month' FROM months)
          AND d.date NOT IN (SELECT date FROM new)
     )
     INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days,
                                     reviewed_sober_days, reviewed_drinking_days, reviewed_tamper_days, reviewed_not_monitored_days, pending_events)
     SELECT $1, date_trunc('month', date::timestamp)::date,
            count(*) FILTER (WHERE status = 'sober'), count(*) FILTER (WHERE status = 'drinking'),
            count(*) FILTER (WHERE status = 'tamper'), count(*) FILTER (WHERE status = 'not_monitored'),
            count(*) FILTER (WHERE reviewed_status = 'sober'), count(*) FILTER (WHERE reviewed_status = 'drinking'),
            count(*) FILTER (WHERE reviewed_status = 'tamper'), count(*) FILTER (WHERE reviewed_status = 'not_monitored'),
            coalesce(sum(pending_events), 0)
       FROM month_days GROUP BY 2
     ON CONFLICT (subject_id, month) DO UPDATE SET sober_days = excluded.sober_days, drinking_days = excluded.drinking_days,
       tamper_days = excluded.tamper_days, not_monitored_days = excluded.not_monitored_days,
       reviewed_sober_days = excluded.reviewed_sober_days, reviewed_drinking_days = excluded.reviewed_drinking_days,
       reviewed_tamper_days = excluded.reviewed_tamper_days, reviewed_not_monitored_days = excluded.reviewed_not_monitored_days,
       pending_events = excluded.pending_events`;

/**
 * Replaces the day results of a subject for the given days (one row per subject and date) and, in
 * the same statement, the subject's rows of alcohol_day_months for every month those days fall in
 * (MONTH_ROLLUP): one statement, so atomic on its own and inside the caller's transaction.
 * `receivedTo` is the latest receipt time of the readings the results were computed from.
 * Writers of one subject must not run concurrently (the evaluate job and a review hold the
 * subject's advisory lock), or the month counts could miss the other writer's days.
 */
export async function saveDays(db: Queryable, subjectId: string, days: DayResult[], version: string, receivedTo: Date | null = null): Promise<void> {
  if (days.length === 0) return;
  await db.query(
    `WITH new AS (
       SELECT d.date::date AS date, d.status, d.covered_minutes, d.drinking_events, d.tampers, d.reviewed_status, d.pending_events, d.events, d.reviews
         FROM jsonb_to_recordset($2::jsonb) AS d(date text, status text, covered_minutes int, drinking_events int, tampers int,
                                                 reviewed_status text, pending_events int, events jsonb, reviews jsonb)
     ), saved AS (
       INSERT INTO alcohol_days (subject_id, date, status, covered_minutes, drinking_events, tampers, params_version,
                                 reviewed_status, pending_events, events, reviews, readings_received_to)
       SELECT $1, date, status, covered_minutes, drinking_events, tampers, $3, reviewed_status, pending_events, events, reviews, $4 FROM new
       ON CONFLICT (subject_id, date) DO UPDATE SET status = excluded.status, covered_minutes = excluded.covered_minutes,
         drinking_events = excluded.drinking_events, tampers = excluded.tampers, params_version = excluded.params_version,
         reviewed_status = excluded.reviewed_status, pending_events = excluded.pending_events, events = excluded.events,
         reviews = excluded.reviews, readings_received_to = excluded.readings_received_to, computed_at = now()
     ), ${MONTH_ROLLUP}`,
    [subjectId, JSON.stringify(days), version, receivedTo],
  );
}

/** A stored day as a review reclassifies it: what it was computed from. */
export interface StoredDayInputs {
  date: string;
  status: DayResult['status'];
  covered_minutes: number;
  /** null for days stored before reviews whose events could not be told from the alerts */
  events: DayResult['events'] | null;
  params: AlcoholParams;
}

/** The stored days of a subject in [fromDate, toDate] (inclusive) with their events and the parameters they were computed with. */
export async function loadDayInputs(db: Queryable, subjectId: string, fromDate: string, toDate: string): Promise<StoredDayInputs[]> {
  const r = await db.query<StoredDayInputs>(
    `SELECT to_char(d.date, 'YYYY-MM-DD') AS date, d.status, d.covered_minutes, d.events, p.params
       FROM alcohol_days d JOIN alcohol_params p ON p.version = d.params_version
      WHERE d.subject_id = $1 AND d.date >= $2::date AND d.date <= $3::date ORDER BY d.date`,
    [subjectId, fromDate, toDate],
  );
  return r.rows;
}

/** Rewrites the reviewed figures of stored days (and their months), leaving the automatic ones as they are. */
export async function saveReviewedDays(db: Queryable, subjectId: string, days: Array<Pick<DayResult, 'date' | 'reviewed_status' | 'pending_events' | 'reviews'>>): Promise<void> {
  if (days.length === 0) return;
  await db.query(
    `WITH input AS (
       SELECT x.date::date AS date, x.reviewed_status, x.pending_events, x.reviews
         FROM jsonb_to_recordset($2::jsonb) AS x(date text, reviewed_status text, pending_events int, reviews jsonb)
     ), new AS (
       SELECT i.date, d.status, i.reviewed_status, i.pending_events FROM input i JOIN alcohol_days d ON d.subject_id = $1 AND d.date = i.date
     ), saved AS (
       UPDATE alcohol_days d SET reviewed_status = i.reviewed_status, pending_events = i.pending_events, reviews = i.reviews, computed_at = now()
         FROM input i WHERE d.subject_id = $1 AND d.date = i.date
     ), ${MONTH_ROLLUP}`,
    [subjectId, JSON.stringify(days)],
  );
}

/** The reviews of the subject's alerted alcohol events whose interval meets [from, to]. */
export async function loadEventReviews(db: Queryable, subjectId: string, from: Date, to: Date): Promise<EventReview[]> {
  const r = await db.query<{ id: string; type: string; started_at: Date; ended_at: Date | null; review_status: EventReview['status'] }>(
    `SELECT id, type, started_at, ended_at, review_status FROM alerts
      WHERE subject_id = $1 AND review_status IS NOT NULL AND started_at <= $3 AND coalesce(ended_at, started_at) >= $2
      ORDER BY started_at, id`,
    [subjectId, from, to],
  );
  return r.rows.map((a) => ({
    alert_id: a.id,
    kind: a.type === 'drinking_event' ? 'drinking' : 'tamper',
    start: a.started_at.getTime(),
    end: (a.ended_at ?? a.started_at).getTime(),
    status: a.review_status,
  }));
}

export interface StoredDay {
  date: string;
  status: DayResult['status'];
  reviewed_status: DayResult['reviewed_status'];
  pending_events: number;
  params_version: string;
}

export async function loadDays(db: Queryable, subjectId: string, fromDate: string, toDate: string): Promise<StoredDay[]> {
  const r = await db.query<StoredDay>(
    `SELECT to_char(date, 'YYYY-MM-DD') AS date, status, reviewed_status, pending_events, params_version FROM alcohol_days
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
  reviewed_sober_days: number;
  reviewed_monitored_days: number;
  pending_events: number;
}

/**
 * Per-subject sober and monitored day counts (automatic and reviewed) and events pending review
 * over [from, to) for a cohort or everyone, one aggregate query: the whole months inside the
 * period from alcohol_day_months, the partial months at its edges from alcohol_days. A subject is
 * listed when it has a day result in the period.
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
    text: `SELECT x.subject_id, s.cohort, sum(x.sober)::int AS sober_days, sum(x.monitored)::int AS monitored_days,
            sum(x.r_sober)::int AS reviewed_sober_days, sum(x.r_monitored)::int AS reviewed_monitored_days, sum(x.pending)::int AS pending_events
       FROM (SELECT subject_id, sum(sober_days)::int AS sober, sum(sober_days + drinking_days + tamper_days)::int AS monitored,
                    sum(reviewed_sober_days)::int AS r_sober, sum(reviewed_sober_days + reviewed_drinking_days + reviewed_tamper_days)::int AS r_monitored,
                    sum(pending_events)::int AS pending, sum(sober_days + drinking_days + tamper_days + not_monitored_days)::int AS days
               FROM alcohol_day_months WHERE month >= $2::date AND month < $3::date
              GROUP BY subject_id
             UNION ALL
             SELECT subject_id, count(*) FILTER (WHERE status = 'sober')::int, count(*) FILTER (WHERE status <> 'not_monitored')::int,
                    count(*) FILTER (WHERE reviewed_status = 'sober')::int, count(*) FILTER (WHERE reviewed_status <> 'not_monitored')::int,
                    sum(pending_events)::int, count(*)::int
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
            count(*) FILTER (WHERE d.status <> 'not_monitored')::int AS monitored_days,
            count(*) FILTER (WHERE d.reviewed_status = 'sober')::int AS reviewed_sober_days,
            count(*) FILTER (WHERE d.reviewed_status <> 'not_monitored')::int AS reviewed_monitored_days,
            sum(d.pending_events)::int AS pending_events
       FROM alcohol_days d JOIN subjects s ON s.id = d.subject_id
      WHERE d.date >= $2::date AND d.date < $3::date AND ($1::text IS NULL OR s.cohort = $1)
      GROUP BY d.subject_id, s.cohort
      ORDER BY d.subject_id`,
    [cohort, fromDate, toDate],
  );
  return r.rows;
}

/**
 * (subject, month) rows where alcohol_day_months differs from the counts of alcohol_days (the
 * four automatic statuses, the four reviewed ones, the pending events), with both sides' counts
 * (null where a side has no row): empty when the rollup is consistent.
 */
export async function rollupDrift(db: Queryable): Promise<Array<{ subject_id: string; month: string; rollup: number[] | null; days: number[] | null }>> {
  const r = await db.query(
    `WITH d AS (
       SELECT subject_id, date_trunc('month', date::timestamp)::date AS month,
              ARRAY[count(*) FILTER (WHERE status = 'sober'), count(*) FILTER (WHERE status = 'drinking'),
                    count(*) FILTER (WHERE status = 'tamper'), count(*) FILTER (WHERE status = 'not_monitored'),
                    count(*) FILTER (WHERE reviewed_status = 'sober'), count(*) FILTER (WHERE reviewed_status = 'drinking'),
                    count(*) FILTER (WHERE reviewed_status = 'tamper'), count(*) FILTER (WHERE reviewed_status = 'not_monitored'),
                    sum(pending_events)]::int[] AS counts
         FROM alcohol_days GROUP BY 1, 2
     ), m AS (
       SELECT subject_id, month, ARRAY[sober_days, drinking_days, tamper_days, not_monitored_days,
              reviewed_sober_days, reviewed_drinking_days, reviewed_tamper_days, reviewed_not_monitored_days, pending_events] AS counts
         FROM alcohol_day_months
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

/**
 * The subject behind an analyst's pseudonymous reference, or null. The reference is a keyed
 * hash, not reversible: it is computed for every subject with day results (the only subjects
 * GET /v1/sobriety lists), about a microsecond each.
 */
export async function subjectOfRef(db: Queryable, key: string, analystId: string, ref: string): Promise<{ id: string; timezone: string } | null> {
  const r = await db.query<{ id: string; timezone: string }>(
    `SELECT s.id, s.timezone FROM subjects s WHERE EXISTS (SELECT 1 FROM alcohol_days d WHERE d.subject_id = s.id)`,
  );
  return r.rows.find((s) => pseudonymFor(key, analystId, s.id) === ref) ?? null;
}

/** ms: the device's alcohol evaluation watermark, or null before its first evaluation. */
export async function alcoholWatermark(db: Queryable, deviceId: string): Promise<number | null> {
  const r = await db.query<{ watermark: Date }>(`SELECT watermark FROM alcohol_progress WHERE device_id = $1`, [deviceId]);
  return r.rows[0]?.watermark.getTime() ?? null;
}

/** The subjects (with their time zones) who wore the device at any time since `since`. */
export async function subjectsWornSince(db: Queryable, deviceId: string, since: Date): Promise<Array<{ subject_id: string; timezone: string }>> {
  const r = await db.query<{ subject_id: string; timezone: string }>(
    `SELECT DISTINCT a.subject_id, s.timezone FROM assignments a JOIN subjects s ON s.id = a.subject_id
      WHERE a.device_id = $1 AND coalesce(a.end_at, 'infinity') > $2 ORDER BY a.subject_id`,
    [deviceId, since],
  );
  return r.rows;
}

import { createHmac } from 'node:crypto';
import type { Queryable } from '../src/db.js';
import type { AlcoholReadingIn } from './classify.js';
import type { DayResult, Interval } from './days.js';
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
export async function subjectAlcoholReadings(db: Queryable, subjectId: string, from: Date, to: Date): Promise<Array<AlcoholReadingIn & { id: string }>> {
  const r = await db.query<{ device_id: string; ts: Date; tac: number; temp_c: number; ir: number | null }>(
    `SELECT r.device_id, r.ts, r.tac, r.temp_c, r.ir
       FROM assignments a
       JOIN readings r ON r.device_id = a.device_id AND r.stream = 'alcohol'
        AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3)
      WHERE a.subject_id = $1
      ORDER BY r.ts`,
    [subjectId, from, to],
  );
  return r.rows.map((x) => ({ id: `${x.device_id}@${x.ts.toISOString()}`, ts: x.ts.getTime(), tac: x.tac, temp_c: x.temp_c, ir: x.ir ?? undefined }));
}

/** Replaces the day results of a subject for the given days (one row per subject and date). */
export async function saveDays(db: Queryable, subjectId: string, days: DayResult[], version: string): Promise<void> {
  if (days.length === 0) return;
  await db.query(
    `INSERT INTO alcohol_days (subject_id, date, status, covered_minutes, drinking_events, tampers, params_version)
     SELECT $1, d.date::date, d.status, d.covered_minutes, d.drinking_events, d.tampers, $3
       FROM jsonb_to_recordset($2::jsonb) AS d(date text, status text, covered_minutes int, drinking_events int, tampers int)
     ON CONFLICT (subject_id, date) DO UPDATE SET status = excluded.status, covered_minutes = excluded.covered_minutes,
       drinking_events = excluded.drinking_events, tampers = excluded.tampers, params_version = excluded.params_version, computed_at = now()`,
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

/** Per-subject sober and monitored day counts over [from, to) for a cohort or everyone: one aggregate query. */
export async function cohortTotals(db: Queryable, cohort: string | null, fromDate: string, toDate: string): Promise<SubjectTotals[]> {
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

/** The pseudonymous reference of a subject for one analyst: stable for that analyst, unlinkable across analysts. */
export function pseudonymFor(key: string, analystId: string, subjectId: string): string {
  return createHmac('sha256', key).update(`${analystId}\u0000${subjectId}`).digest('base64url').slice(0, 16);
}

export async function pseudonymKey(db: Queryable): Promise<string> {
  const r = await db.query<{ key: string }>(`SELECT key FROM pseudonym_key`);
  return r.rows[0]!.key;
}

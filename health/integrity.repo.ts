import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { caseloadFilter } from '../registry/subjects.repo.js';
import { DEFAULT_INTEGRITY, floorHour, HOUR_MS, monitoringGap, type DeviceKind, type Fitting, type GapStatus, type HourCount, type IntegrityParams, type MonitoredStream } from './integrity.js';

/** Monitoring integrity's reads: fittings and per-hour reading counts (device time, UTC hours). */

export interface SubjectFitting extends Fitting {
  subject_id: string;
  device_id: string;
}

/** The fittings overlapping [from, to) of the given subjects (null: every subject), with each device's kind. */
export async function fittingsBetween(db: Queryable, subjectIds: readonly string[] | null, from: Date, to: Date): Promise<SubjectFitting[]> {
  const r = await db.query<{ subject_id: string; device_id: string; kind: DeviceKind; start_at: Date; end_at: Date | null }>(
    `SELECT a.subject_id, a.device_id, d.kind, a.start_at, a.end_at FROM assignments a JOIN devices d ON d.id = a.device_id
      WHERE a.start_at < $2 AND coalesce(a.end_at, 'infinity') > $1 AND ($3::text[] IS NULL OR a.subject_id = ANY($3::text[]))
      ORDER BY a.subject_id, a.start_at`,
    [from, to, subjectIds],
  );
  return r.rows.map((x) => ({ subject_id: x.subject_id, device_id: x.device_id, kind: x.kind, start: x.start_at.getTime(), end: x.end_at?.getTime() ?? null }));
}

/**
 * Per subject, stream and UTC hour, the readings of `streams` with device time in [from, to) and
 * inside a fitting of the subject (null: every subject). One pass per fitting over the readings'
 * primary key (device_id, stream, ts), grouped by the hour; bounded by [from, to).
 */
export async function hourCounts(db: Queryable, subjectIds: readonly string[] | null, streams: readonly MonitoredStream[], from: Date, to: Date): Promise<Map<string, HourCount[]>> {
  const r = await db.query<{ subject_id: string; stream: MonitoredStream; hour: Date; received: number }>(
    `SELECT a.subject_id, s.stream, r.hour, sum(r.n)::int AS received
       FROM assignments a
       CROSS JOIN LATERAL unnest($3::text[]) AS s(stream)
       JOIN LATERAL (
         SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, count(*) AS n FROM readings
          WHERE device_id = a.device_id AND stream = s.stream AND ts >= greatest(a.start_at, $1) AND ts < least(coalesce(a.end_at, 'infinity'), $2)
          GROUP BY 1
       ) r ON true
      WHERE a.start_at < $2 AND coalesce(a.end_at, 'infinity') > $1 AND ($4::text[] IS NULL OR a.subject_id = ANY($4::text[]))
      GROUP BY 1, 2, 3`,
    [from, to, streams, subjectIds],
  );
  const out = new Map<string, HourCount[]>();
  for (const x of r.rows) out.set(x.subject_id, [...(out.get(x.subject_id) ?? []), { stream: x.stream, hour: x.hour.getTime(), received: x.received }]);
  return out;
}

/** One subject's gap status at `now` (reads its fittings and the counts of the current hour and the 24 before). */
export async function subjectGap(db: Queryable, subjectId: string, now: number, p: IntegrityParams = DEFAULT_INTEGRITY): Promise<GapStatus> {
  const from = new Date(floorHour(now) - 24 * HOUR_MS);
  const fittings = await fittingsBetween(db, [subjectId], from, new Date(now));
  const counts = await hourCounts(db, [subjectId], ['gps', 'alcohol'], from, new Date(now));
  return monitoringGap(fittings, counts.get(subjectId) ?? [], now, p);
}

/**
 * The gap status at `now` of every subject with a device fitted now, within the user's caseload
 * (null: all). GPS is counted over the current and the last full hour only, alcohol over the
 * current hour and the 24 before (what the rule reads), so the fleet read stays bounded.
 */
export async function fleetGaps(db: Queryable, user: User | null, now: number, p: IntegrityParams = DEFAULT_INTEGRITY): Promise<Map<string, GapStatus>> {
  const at = new Date(now);
  const f = user ? caseloadFilter(user, 2, 's.offender_manager_ids') : { sql: 'true', params: [] };
  const ids = (
    await db.query<{ subject_id: string }>(
      `SELECT DISTINCT a.subject_id FROM assignments a JOIN subjects s ON s.id = a.subject_id
        WHERE a.start_at <= $1 AND coalesce(a.end_at, 'infinity') > $1 AND ${f.sql} ORDER BY 1`,
      [at, ...f.params],
    )
  ).rows.map((x) => x.subject_id);
  const out = new Map<string, GapStatus>();
  if (ids.length === 0) return out;
  const current = floorHour(now);
  const fittings = await fittingsBetween(db, ids, new Date(current - 24 * HOUR_MS), at);
  const gps = await hourCounts(db, ids, ['gps'], new Date(current - HOUR_MS), at);
  const alcohol = await hourCounts(db, ids, ['alcohol'], new Date(current - 24 * HOUR_MS), at);
  const fittingsOf = new Map<string, Fitting[]>();
  for (const x of fittings) fittingsOf.set(x.subject_id, [...(fittingsOf.get(x.subject_id) ?? []), x]);
  for (const id of ids) out.set(id, monitoringGap(fittingsOf.get(id) ?? [], [...(gps.get(id) ?? []), ...(alcohol.get(id) ?? [])], now, p));
  return out;
}

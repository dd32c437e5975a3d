import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { caseloadFilter } from '../registry/subjects.repo.js';
import { REVIEWED_TYPES } from '../alerts/rules.js';

/** What the supervisor's console lists read; the caseload filter of the API applies in SQL to each. */

export interface EscalationRow {
  id: string;
  type: string;
  severity: string;
  subject_id: string;
  display_name: string;
  manager_ids: string[];
  raised_at: Date;
  escalated_at: Date;
}

/** Escalated alerts still open (nobody acknowledged them), longest escalated first; `limit`+1 read to tell whether more follow. */
export async function escalationsFor(db: Queryable, user: User, limit: number): Promise<{ items: EscalationRow[]; more: boolean }> {
  const f = caseloadFilter(user, 2, 's.offender_manager_ids');
  const r = await db.query<EscalationRow>(
    `SELECT a.id, a.type, a.severity, a.subject_id, s.display_name, s.offender_manager_ids AS manager_ids, a.raised_at, a.escalated_at
       FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE a.status = 'open' AND a.escalated_at IS NOT NULL AND ${f.sql}
      ORDER BY a.escalated_at, a.id
      LIMIT $1`,
    [limit + 1, ...f.params],
  );
  return { items: r.rows.slice(0, limit), more: r.rows.length > limit };
}

export interface ReviewQueueRow {
  id: string;
  type: string;
  subject_id: string;
  display_name: string;
  started_at: Date;
  ended_at: Date | null;
  raised_at: Date;
  status: string;
  /** the rule that fired (evidence[0].summary.kind): drinking, obstruction or removal */
  kind: string | null;
  peak_tac: number | null;
}

/** Drinking events and alcohol tampers pending review in the user's caseload, oldest event first. */
export async function reviewQueueFor(db: Queryable, user: User, limit: number): Promise<{ items: ReviewQueueRow[]; more: boolean }> {
  const f = caseloadFilter(user, 3, 's.offender_manager_ids');
  const r = await db.query<ReviewQueueRow>(
    `SELECT a.id, a.type, a.subject_id, s.display_name, a.started_at, a.ended_at, a.raised_at, a.status,
            a.evidence -> 0 -> 'summary' ->> 'kind' AS kind, (a.evidence -> 0 -> 'summary' ->> 'peak_tac')::float8 AS peak_tac
       FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE a.review_status = 'pending' AND a.type = ANY($2::text[]) AND ${f.sql}
      ORDER BY a.started_at, a.id
      LIMIT $1`,
    [limit + 1, [...REVIEWED_TYPES], ...f.params],
  );
  return { items: r.rows.slice(0, limit), more: r.rows.length > limit };
}

export interface CurveReading { ts: number; tac: number; ir: number | null; temp_c: number }

/**
 * The alcohol readings of the alert's device from `before` ms before the event to `after` ms
 * after it (device time), at most `max`, oldest first: the curve around the event. An alert whose
 * device is gone falls back to its evidence readings (the caller's).
 */
export async function curveAround(db: Queryable, deviceId: string | null, start: Date, end: Date, marginMs: number, max = 500): Promise<CurveReading[]> {
  if (!deviceId) return [];
  const r = await db.query<{ ts: Date; tac: number; ir: number | null; temp_c: number }>(
    `SELECT ts, tac, ir, temp_c FROM readings
      WHERE device_id = $1 AND stream = 'alcohol' AND ts >= $2 AND ts <= $3 AND tac IS NOT NULL
      ORDER BY ts LIMIT $4`,
    [deviceId, new Date(start.getTime() - marginMs), new Date(end.getTime() + marginMs), max],
  );
  return r.rows.map((x) => ({ ts: x.ts.getTime(), tac: x.tac, ir: x.ir, temp_c: x.temp_c }));
}

/** A stored alcohol parameter set by its version (the thresholds the event was decided with). */
export async function paramsOf(db: Queryable, version: string | null): Promise<Record<string, number> | null> {
  if (!version) return null;
  const r = await db.query<{ params: Record<string, number> }>(`SELECT params FROM alcohol_params WHERE version = $1`, [version]);
  return r.rows[0]?.params ?? null;
}

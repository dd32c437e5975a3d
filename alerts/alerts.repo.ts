import type { Queryable, TxClient } from '../platform/db.js';
import { PER_EVENT_TYPES, SEVERITY, isReviewed, type AlertType } from './rules.js';

export interface NewAlert {
  type: AlertType;
  subjectId: string;
  deviceId: string | null;
  zoneId: string | null;
  /** device time of the first evidence */
  startedAt: Date;
  late: boolean;
  evidence: unknown[];
  /** a crime_proximity alert's match (its identity: one alert per confirmed match) */
  crimeMatchId?: string | null;
  /** who raised it and why, when a person did (a confirmed crime match); default the system */
  raisedBy?: { actor: string; note: string };
}

export interface AlertRow {
  id: string;
  type: AlertType;
  severity: string;
  subject_id: string;
  device_id: string | null;
  zone_id: string | null;
  started_at: Date;
  raised_at: Date;
  late: boolean;
  status: 'open' | 'acknowledged' | 'resolved';
  evidence: unknown[];
  ended_at: Date | null;
}

export type RaiseResult =
  | { outcome: 'raised'; alert: AlertRow }
  /** the same condition (subject, type, zone, start) was alerted before: nothing to do */
  | { outcome: 'already_alerted' }
  /** an alert of this (subject, type, zone) is still open: the recurrence is added to its history */
  | { outcome: 'recurred'; alertId: string };

const COLS = `id, type, severity, subject_id, device_id, zone_id, started_at, raised_at, late, status, evidence, ended_at`;

/**
 * Raises an alert once: a retry or a re-evaluation finding the same condition (subject, type,
 * zone, start) changes nothing, and while an alert of the same (subject, type, zone) is open, a
 * new occurrence is recorded in its history instead of opening a second one (contract §5), except
 * for PER_EVENT_TYPES: each of their events is its own alert, identified by its start. A reviewed
 * type is raised `pending` review. The alert and its `raised` event are two statements: it takes
 * a transaction, so neither is ever left without the other.
 */
export async function raiseAlert(db: TxClient, a: NewAlert): Promise<RaiseResult> {
  const r = await db.query<AlertRow>(
    `INSERT INTO alerts (type, severity, subject_id, device_id, zone_id, started_at, late, evidence, per_event, review_status, crime_match_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING ${COLS}`,
    [a.type, SEVERITY[a.type], a.subjectId, a.deviceId, a.zoneId, a.startedAt, a.late, JSON.stringify(a.evidence), PER_EVENT_TYPES.includes(a.type), isReviewed(a.type) ? 'pending' : null, a.crimeMatchId ?? null],
  );
  if (r.rows[0]) {
    await db.query(`INSERT INTO alert_events (alert_id, actor, action, note) VALUES ($1, $2, 'raised', $3)`, [
      r.rows[0].id,
      a.raisedBy?.actor ?? 'system',
      a.raisedBy?.note ?? (a.late ? 'raised from readings that arrived late' : null),
    ]);
    return { outcome: 'raised', alert: r.rows[0] };
  }
  const same = a.crimeMatchId
    ? await db.query(`SELECT 1 FROM alerts WHERE crime_match_id = $1`, [a.crimeMatchId])
    : await db.query(
        `SELECT 1 FROM alerts WHERE subject_id = $1 AND type = $2 AND coalesce(zone_id::text, '') = coalesce($3::text, '') AND started_at = $4 AND crime_match_id IS NULL`,
        [a.subjectId, a.type, a.zoneId, a.startedAt],
      );
  if (same.rowCount) return { outcome: 'already_alerted' };
  if (PER_EVENT_TYPES.includes(a.type)) throw new Error(`alert for ${a.subjectId}/${a.type} at ${a.startedAt.toISOString()} neither inserted nor found`);
  const open = await db.query<{ id: string }>(
    `SELECT id FROM alerts WHERE subject_id = $1 AND type = $2 AND coalesce(zone_id::text, '') = coalesce($3::text, '') AND status = 'open'`,
    [a.subjectId, a.type, a.zoneId],
  );
  const id = open.rows[0]?.id;
  if (!id) throw new Error(`alert for ${a.subjectId}/${a.type} neither inserted nor found`); // a concurrent resolve: retried
  const note = `recurred: started ${a.startedAt.toISOString()}${a.late ? ' (late readings)' : ''}`;
  await db.query(
    `INSERT INTO alert_events (alert_id, actor, action, note)
     SELECT $1, 'system', 'recurred', $2 WHERE NOT EXISTS (SELECT 1 FROM alert_events WHERE alert_id = $1 AND action = 'recurred' AND note = $2)`,
    [id, note],
  );
  return { outcome: 'recurred', alertId: id };
}

/** Records that the condition of an alert ended (a breach over), without changing its workflow status. */
export async function endCondition(db: Queryable, subjectId: string, type: AlertType, zoneId: string | null, startedAt: Date, endedAt: Date): Promise<void> {
  await db.query(
    `UPDATE alerts SET ended_at = $5, updated_at = now()
      WHERE subject_id = $1 AND type = $2 AND coalesce(zone_id::text, '') = coalesce($3::text, '') AND started_at = $4 AND ended_at IS NULL`,
    [subjectId, type, zoneId, startedAt, endedAt],
  );
}

/** Alerts of a (subject, type, zone) whose condition interval overlaps [from, to]. */
export async function overlappingAlerts(db: Queryable, subjectId: string, type: AlertType, zoneId: string | null, from: Date, to: Date): Promise<number> {
  const r = await db.query<{ n: number }>(
    `SELECT count(*)::int n FROM alerts
      WHERE subject_id = $1 AND type = $2 AND coalesce(zone_id::text, '') = coalesce($3::text, '')
        AND started_at <= $5 AND coalesce(ended_at, 'infinity') >= $4`,
    [subjectId, type, zoneId, from, to],
  );
  return r.rows[0]!.n;
}

import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { caseloadFilter } from '../registry/subjects.repo.js';
import type { AlertType } from './rules.js';

/**
 * The life of an alert after it is raised (contract §5): acknowledge, resolve (with an optional
 * note and whether it was a false alarm), automatic resolution of conditions that clear, and
 * escalation. Every change is one row in alert_events (the history and the delivery feed).
 * Caseload limits are SQL filters.
 */

export const ALERT_COLS = `a.id, a.type, a.severity, a.subject_id, a.device_id, a.zone_id, a.started_at, a.raised_at, a.late, a.status,
  a.evidence, a.ended_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by, a.false_alarm, a.escalated_at`;

export interface AlertFilter {
  status?: string;
  subject_id?: string;
  type?: string;
  before?: { raised_at: string; id: string } | null;
  limit: number;
}

export async function listAlertsFor(db: Queryable, user: User, f: AlertFilter) {
  const cl = caseloadFilter(user, 7, 's.offender_manager_ids');
  const r = await db.query(
    `SELECT ${ALERT_COLS} FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.subject_id = $2) AND ($3::text IS NULL OR a.type = $3)
        AND ($4::timestamptz IS NULL OR (a.raised_at, a.id) < ($4, $5::uuid))
        AND ${cl.sql}
      ORDER BY a.raised_at DESC, a.id DESC LIMIT $6`,
    [f.status ?? null, f.subject_id ?? null, f.type ?? null, f.before?.raised_at ?? null, f.before?.id ?? null, f.limit, ...cl.params],
  );
  return r.rows;
}

export async function getAlertFor(db: Queryable, user: User, id: string) {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return null;
  const cl = caseloadFilter(user, 2, 's.offender_manager_ids');
  const r = await db.query(
    `SELECT ${ALERT_COLS} FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE a.id = $1 AND ${cl.sql}`,
    [id, ...cl.params],
  );
  if (!r.rows[0]) return null;
  const h = await db.query(`SELECT id::text, at, actor, action, note FROM alert_events WHERE alert_id = $1 ORDER BY alert_events.id`, [id]);
  return { ...r.rows[0], history: h.rows };
}

export type Transition = { ok: true; alert: Record<string, unknown> } | { ok: false; status: 404 | 409; detail: string };

/**
 * Moves an alert of the user's caseload to `acknowledged` or `resolved`. Acknowledging twice,
 * or changing a resolved alert, is a 409 that changes nothing (no second history entry).
 */
export async function transition(
  db: Queryable,
  user: User,
  id: string,
  to: 'acknowledged' | 'resolved',
  note: string | null,
  falseAlarm: boolean | null,
): Promise<Transition> {
  const current = await getAlertFor(db, user, id);
  if (!current) return { ok: false, status: 404, detail: `alert ${id} not found` };
  const from = to === 'acknowledged' ? ['open'] : ['open', 'acknowledged'];
  const r = await db.query(
    `WITH upd AS (
       UPDATE alerts SET status = $2, updated_at = now(),
         acknowledged_at = CASE WHEN $2 = 'acknowledged' THEN now() ELSE acknowledged_at END,
         acknowledged_by = CASE WHEN $2 = 'acknowledged' THEN $3 ELSE acknowledged_by END,
         resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE resolved_at END,
         resolved_by = CASE WHEN $2 = 'resolved' THEN $3 ELSE resolved_by END,
         false_alarm = CASE WHEN $2 = 'resolved' THEN $6 ELSE false_alarm END
        WHERE id = $1 AND status = ANY($5::text[]) RETURNING id)
     INSERT INTO alert_events (alert_id, actor, action, note)
     SELECT id, $3, $2, $4 FROM upd RETURNING alert_id`,
    [id, to, user.id, note, from, falseAlarm],
  );
  if (!r.rowCount) return { ok: false, status: 409, detail: `alert ${id} is ${current.status as string}: it cannot be ${to}` };
  return { ok: true, alert: (await getAlertFor(db, user, id))! };
}

/** Resolves the open or acknowledged alert of a condition that cleared by itself, saying so. */
export async function autoResolve(db: Queryable, subjectId: string, type: AlertType, reason: string, endedAt: Date): Promise<boolean> {
  const r = await db.query(
    `WITH upd AS (
       UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = 'system', ended_at = coalesce(ended_at, $4), updated_at = now()
        WHERE subject_id = $1 AND type = $2 AND zone_id IS NULL AND status IN ('open', 'acknowledged') RETURNING id)
     INSERT INTO alert_events (alert_id, actor, action, note) SELECT id, 'system', 'auto_resolved', $3 FROM upd RETURNING alert_id`,
    [subjectId, type, reason, endedAt],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * Escalates high alerts left open (unacknowledged) for `afterMs` to supervisors, once each:
 * the mark is in the database, so a restart neither loses nor repeats an escalation.
 */
export async function escalateOverdue(db: Queryable, afterMs: number, now: Date): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `WITH due AS (
       UPDATE alerts SET escalated_at = $2, updated_at = now()
        WHERE status = 'open' AND severity = 'high' AND escalated_at IS NULL AND raised_at <= $2::timestamptz - make_interval(secs => $1::float8 / 1000)
        RETURNING id, raised_at)
     INSERT INTO alert_events (alert_id, actor, action, note, audience)
     SELECT id, 'system', 'escalated', 'not acknowledged within ' || round($1::numeric / 60000) || ' minutes', 'supervisors' FROM due
     RETURNING alert_id::text AS id`,
    [afterMs, now],
  );
  return r.rows.map((x) => x.id);
}

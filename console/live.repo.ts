import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { caseloadFilter } from '../registry/subjects.repo.js';
import type { InboxRow } from './console.repo.js';

/**
 * A supervisor's stated reason for one record, kept for this long after it is given (ms): each
 * GET of that record by the same session within it is shown and audited with the reason.
 */
export const REASON_TTL_MS = 15 * 60_000;
export type ReasonRecord = 'alert' | 'subject';

/** Keeps `reason` for the session of `sessionKey` and one record until now + REASON_TTL_MS (a new reason replaces the old). */
export async function keepReason(db: Queryable, sessionKey: string, kind: ReasonRecord, recordId: string, reason: string, now: Date): Promise<void> {
  await db.query(
    `INSERT INTO console_reasons (session_hash, record_kind, record_id, reason, given_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (session_hash, record_kind, record_id) DO UPDATE SET reason = EXCLUDED.reason, given_at = EXCLUDED.given_at, expires_at = EXCLUDED.expires_at`,
    [sessionKey, kind, recordId, reason, now, new Date(now.getTime() + REASON_TTL_MS)],
  );
}

/** The reason this session gave for this record, while it lasts, or null. */
export async function keptReason(db: Queryable, sessionKey: string, kind: ReasonRecord, recordId: string, now: Date): Promise<string | null> {
  const r = await db.query<{ reason: string }>(
    `SELECT reason FROM console_reasons WHERE session_hash = $1 AND record_kind = $2 AND record_id = $3 AND expires_at > $4`,
    [sessionKey, kind, recordId, now],
  );
  return r.rows[0]?.reason ?? null;
}

/** One alert of the caseload as an inbox row (any status), or null when it is not in the user's caseload. */
export async function inboxRowFor(db: Queryable, user: User, alertId: string): Promise<InboxRow | null> {
  if (!/^[0-9a-f-]{36}$/i.test(alertId)) return null;
  const f = caseloadFilter(user, 2, 's.offender_manager_ids');
  const r = await db.query<InboxRow>(
    `SELECT a.id, a.type, a.severity, a.status, a.subject_id, s.display_name, a.raised_at, a.late
       FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE a.id = $1::uuid AND ${f.sql}`,
    [alertId, ...f.params],
  );
  return r.rows[0] ?? null;
}

/** Whether an alcohol-capable device (kind alcohol or combined) has ever been fitted to the subject. */
export async function hasAlcoholMonitoring(db: Queryable, subjectId: string): Promise<boolean> {
  const r = await db.query(
    `SELECT 1 FROM assignments a JOIN devices d ON d.id = a.device_id WHERE a.subject_id = $1 AND d.kind IN ('alcohol', 'combined') LIMIT 1`,
    [subjectId],
  );
  return (r.rowCount ?? 0) > 0;
}

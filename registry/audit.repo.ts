import type { FastifyRequest } from 'fastify';
import type { Queryable } from '../platform/db.js';
import { userOf } from '../platform/http/auth.js';

export interface AuditEntry {
  action: string;
  subjectId?: string | null;
  detail?: Record<string, unknown>;
}

/**
 * Appends to the audit log: who (the request's user), what, when (now), which subject, from
 * where, and why (the reason the caller gave, X-Tagwatch-Reason, when any).
 */
export async function audit(db: Queryable, request: FastifyRequest, entry: AuditEntry): Promise<void> {
  const user = userOf(request);
  await db.query(
    `INSERT INTO audit_log (actor, role, action, subject_id, detail, ip, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [user.id, user.role, entry.action, entry.subjectId ?? null, JSON.stringify(entry.detail ?? {}), request.ip, request.reason ?? null],
  );
}

/**
 * One audit row per subject whose data a multi-subject read showed (a list of alerts, of
 * subjects), each with what of theirs was shown, so the log answers "who saw this person's
 * data"; one row without a subject when the list was empty. One statement for the whole list.
 */
export async function auditSubjects(db: Queryable, request: FastifyRequest, action: string, shown: Map<string, Record<string, unknown>>, common: Record<string, unknown> = {}): Promise<void> {
  if (shown.size === 0) return audit(db, request, { action, detail: { ...common, count: 0 } });
  const user = userOf(request);
  const ids = [...shown.keys()];
  const details = ids.map((id) => JSON.stringify({ ...common, ...shown.get(id) }));
  await db.query(
    `INSERT INTO audit_log (actor, role, action, subject_id, detail, ip, reason)
     SELECT $1, $2, $3, s.id, s.detail::jsonb, $6, $7 FROM unnest($4::text[], $5::text[]) AS s(id, detail)`,
    [user.id, user.role, action, ids, details, request.ip, request.reason ?? null],
  );
}

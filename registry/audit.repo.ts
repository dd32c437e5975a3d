import type { FastifyRequest } from 'fastify';
import type { Queryable } from '../platform/db.js';
import { userOf } from '../platform/http/auth.js';

export interface AuditEntry {
  action: string;
  subjectId?: string | null;
  detail?: Record<string, unknown>;
}

/** Appends to the audit log: who (the request's user), what, when (now), which subject, from where. */
export async function audit(db: Queryable, request: FastifyRequest, entry: AuditEntry): Promise<void> {
  const user = userOf(request);
  await db.query(
    `INSERT INTO audit_log (actor, role, action, subject_id, detail, ip) VALUES ($1, $2, $3, $4, $5, $6)`,
    [user.id, user.role, entry.action, entry.subjectId ?? null, JSON.stringify(entry.detail ?? {}), request.ip],
  );
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Pool } from '../platform/db.js';
import { audit } from './audit.repo.js';

import { DateTimeIn, RefId } from '../platform/http/schemas.js';

export interface AuditQuery {
  subject_id?: string;
  actor?: string;
  /** the action, exactly (e.g. `subject.read`) */
  action?: string;
  from?: string;
  to?: string;
  limit: number;
  /** cursor: entries with a smaller id */
  before?: string;
}

/** Searches the audit log, newest first (the API and the console); the search is itself audited. */
export async function searchAudit(pool: Pool, request: FastifyRequest, q: AuditQuery, via?: string) {
  const r = await pool.query(
    `SELECT id::text, actor, role, action, subject_id, reason, at, ip, detail FROM audit_log
      WHERE ($1::text IS NULL OR subject_id = $1) AND ($2::text IS NULL OR actor = $2)
        AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
        AND ($5::bigint IS NULL OR id < $5) AND ($7::text IS NULL OR action = $7)
      ORDER BY audit_log.id DESC LIMIT $6`,
    [q.subject_id ?? null, q.actor ?? null, q.from ?? null, q.to ?? null, q.before ?? null, q.limit, q.action ?? null],
  );
  await audit(pool, request, { action: 'audit.read', subjectId: q.subject_id ?? null, detail: { count: r.rows.length, ...(q.action ? { filter_action: q.action } : {}), ...(via ? { via } : {}) } });
  return { items: r.rows as Array<{ id: string; actor: string; role: string; action: string; subject_id: string | null; reason: string | null; at: Date; ip: string | null; detail: Record<string, unknown> }>, next_before: r.rows.length === q.limit ? (r.rows[r.rows.length - 1] as { id: string }).id : null };
}

/** GET /v1/audit's query (the console's search form is checked against it too). */
export const AuditQuerySchema = Type.Object(
  {
    subject_id: Type.Optional(RefId),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    action: Type.Optional(Type.String({ pattern: '^[a-z_.]{1,64}$', description: 'the action, exactly (e.g. subject.read)' })),
    from: Type.Optional(DateTimeIn),
    to: Type.Optional(DateTimeIn),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })),
  },
  { additionalProperties: false },
);

/** The audit log for admins (contract §6), newest first. */
export function auditRoutes(pool: Pool): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/v1/audit',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'listAudit',
          summary: 'The audit trail of reads and changes of personal data',
          tags: ['audit'],
          querystring: AuditQuerySchema,
        },
      },
      async (request) => searchAudit(pool, request, request.query),
    );

  };
}

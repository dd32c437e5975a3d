import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import { audit } from './audit.repo.js';

import { DateTimeIn, RefId } from '../platform/http/schemas.js';

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
          querystring: Type.Object(
            {
              subject_id: Type.Optional(RefId),
              actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
              from: Type.Optional(DateTimeIn),
              to: Type.Optional(DateTimeIn),
              limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
              before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        const q = request.query;
        const r = await pool.query(
          `SELECT id::text, actor, role, action, subject_id, reason, at, ip, detail FROM audit_log
            WHERE ($1::text IS NULL OR subject_id = $1) AND ($2::text IS NULL OR actor = $2)
              AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
              AND ($5::bigint IS NULL OR id < $5)
            ORDER BY audit_log.id DESC LIMIT $6`,
          [q.subject_id ?? null, q.actor ?? null, q.from ?? null, q.to ?? null, q.before ?? null, q.limit],
        );
        await audit(pool, request, { action: 'audit.read', subjectId: q.subject_id ?? null, detail: { count: r.rows.length } });
        return { items: r.rows, next_before: r.rows.length === q.limit ? (r.rows[r.rows.length - 1] as { id: string }).id : null };
      },
    );

  };
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';

const Contact = Type.Object({ email: Type.String({ format: 'email', maxLength: 254 }) }, { additionalProperties: false });

/**
 * The caller's own alert-email address (alerts/email.ts): managers are mailed the alerts raised
 * on their caseload, supervisors the escalations, when the service has SMTP configured.
 */
export function emailRoutes(pool: Pool, emailEnabled: boolean): FastifyPluginAsyncTypebox {
  const opts = { config: { roles: ['offender_manager', 'supervisor'] as const }, schema: { tags: ['alerts'] } };
  return async (app) => {
    app.get('/v1/me/notifications', { ...opts, schema: { operationId: 'getNotificationSettings', ...opts.schema, summary: 'The caller’s alert-email address, and whether the service sends email' } }, async (request) => {
      const r = await pool.query<{ email: string; updated_at: Date }>(`SELECT email, updated_at FROM notification_contacts WHERE user_id = $1`, [userOf(request).id]);
      return { email: r.rows[0]?.email ?? null, updated_at: r.rows[0]?.updated_at ?? null, email_enabled: emailEnabled };
    });

    app.put(
      '/v1/me/notifications',
      { ...opts, schema: { operationId: 'setNotificationSettings', ...opts.schema, summary: 'Set the caller’s alert-email address (managers: raised alerts of their caseload; supervisors: escalations)', body: Contact } },
      async (request) => {
        const user = userOf(request);
        const r = await pool.query<{ email: string; updated_at: Date }>(
          `INSERT INTO notification_contacts (user_id, role, email) VALUES ($1, $2, $3)
           ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role, email = EXCLUDED.email, updated_at = now()
           RETURNING email, updated_at`,
          [user.id, user.role, request.body.email],
        );
        await audit(pool, request, { action: 'notifications.set' });
        return { ...r.rows[0]!, email_enabled: emailEnabled };
      },
    );

    app.delete('/v1/me/notifications', { ...opts, schema: { operationId: 'deleteNotificationSettings', ...opts.schema, summary: 'Stop alert emails to the caller' } }, async (request, reply) => {
      const r = await pool.query(`DELETE FROM notification_contacts WHERE user_id = $1`, [userOf(request).id]);
      if (!r.rowCount) return problem(reply, 404, 'Not Found', 'no alert-email address is set');
      await audit(pool, request, { action: 'notifications.delete' });
      return reply.code(204).send();
    });
  };
}

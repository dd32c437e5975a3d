import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { problems } from './webhooks.routes.js';

export const Contact = Type.Object({ email: Type.String({ format: 'email', maxLength: 254 }) }, { additionalProperties: false });
const COLS = `email, updated_at, expires_at`;

export interface NotificationContact {
  email: string;
  updated_at: Date;
  expires_at: Date;
}

/*
 * The alert-email subscription as the API and the console both change it: the same rows and
 * audit actions whoever calls.
 */

export async function myNotifications(pool: Pool, request: FastifyRequest): Promise<NotificationContact | null> {
  const r = await pool.query<NotificationContact>(`SELECT ${COLS} FROM notification_contacts WHERE user_id = $1`, [userOf(request).id]);
  return r.rows[0] ?? null;
}

/** Sets the caller's address for `days` from now, held with their current role. */
export async function setMyNotifications(pool: Pool, request: FastifyRequest, email: string, days: number): Promise<NotificationContact> {
  const user = userOf(request);
  const r = await pool.query<NotificationContact>(
    `INSERT INTO notification_contacts (user_id, role, email, expires_at) VALUES ($1, $2, $3, now() + make_interval(days => $4))
     ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role, email = EXCLUDED.email, updated_at = now(), expires_at = EXCLUDED.expires_at
     RETURNING ${COLS}`,
    [user.id, user.role, email, days],
  );
  await audit(pool, request, { action: 'notifications.set' });
  return r.rows[0]!;
}

/** Renews the caller's subscription for `days` from now; null when they have none. */
export async function renewMyNotifications(pool: Pool, request: FastifyRequest, days: number): Promise<NotificationContact | null> {
  const user = userOf(request);
  const r = await pool.query<NotificationContact>(`UPDATE notification_contacts SET expires_at = now() + make_interval(days => $2), role = $3 WHERE user_id = $1 RETURNING ${COLS}`, [user.id, days, user.role]);
  if (!r.rowCount) return null;
  await audit(pool, request, { action: 'notifications.renew' });
  return r.rows[0]!;
}

export async function deleteMyNotifications(pool: Pool, request: FastifyRequest): Promise<boolean> {
  const r = await pool.query(`DELETE FROM notification_contacts WHERE user_id = $1`, [userOf(request).id]);
  if (!r.rowCount) return false;
  await audit(pool, request, { action: 'notifications.delete' });
  return true;
}

/** Every subscription (admins; the read is audited). */
export async function notificationSubscriptions(pool: Pool, request: FastifyRequest): Promise<Array<NotificationContact & { user_id: string; role: string; expired: boolean }>> {
  const r = await pool.query(`SELECT user_id, role, ${COLS}, expires_at <= now() AS expired FROM notification_contacts ORDER BY user_id`);
  await audit(pool, request, { action: 'notifications.read', detail: { count: r.rows.length } });
  return r.rows;
}

/** Revokes a user's subscription (admins); false when they have none. */
export async function revokeNotifications(pool: Pool, request: FastifyRequest, userId: string): Promise<boolean> {
  const r = await pool.query(`DELETE FROM notification_contacts WHERE user_id = $1`, [userId]);
  if (!r.rowCount) return false;
  await audit(pool, request, { action: 'notifications.revoke', detail: { user_id: userId } });
  return true;
}

/**
 * The caller's own alert-email address (alerts/email.ts): managers are mailed the alerts raised
 * on their caseload, supervisors the escalations, when the service has SMTP configured. The
 * subscription lasts `days` (SUBSCRIPTION_DAYS) from when it was set or last renewed, and is
 * held with the role the user had then; an expired one is mailed nothing. Admins list every
 * subscription and revoke any (audited).
 */
export function emailRoutes(pool: Pool, emailEnabled: boolean, days = 90): FastifyPluginAsyncTypebox {
  const opts = { config: { roles: ['offender_manager', 'supervisor'] as const } };
  const tags = ['alerts'];
  return async (app) => {
    app.get(
      '/v1/me/notifications',
      { ...opts, schema: { tags, operationId: 'getMyNotifications', summary: 'The caller’s alert-email address, until when it runs, and whether the service sends email', response: problems(401, 403) } },
      async (request) => {
        const row = await myNotifications(pool, request);
        return { email: row?.email ?? null, updated_at: row?.updated_at ?? null, expires_at: row?.expires_at ?? null, expired: row ? row.expires_at <= new Date() : null, email_enabled: emailEnabled };
      },
    );

    app.put(
      '/v1/me/notifications',
      {
        ...opts,
        schema: {
          tags,
          operationId: 'setMyNotifications',
          summary: 'Set the caller’s alert-email address (managers: raised alerts of their caseload; supervisors: escalations) for SUBSCRIPTION_DAYS',
          body: Contact,
          response: problems(400, 401, 403),
        },
      },
      async (request) => ({ ...(await setMyNotifications(pool, request, request.body.email, days)), email_enabled: emailEnabled }),
    );

    app.post(
      '/v1/me/notifications/renew',
      {
        ...opts,
        schema: { tags, operationId: 'renewMyNotifications', summary: 'Renew the caller’s alert-email subscription for SUBSCRIPTION_DAYS from now, with the caller’s current role', response: problems(401, 403, 404) },
      },
      async (request, reply) => {
        const row = await renewMyNotifications(pool, request, days);
        if (!row) return problem(reply, 404, 'Not Found', 'no alert-email address is set');
        return { ...row, email_enabled: emailEnabled };
      },
    );

    app.delete(
      '/v1/me/notifications',
      { ...opts, schema: { tags, operationId: 'deleteMyNotifications', summary: 'Stop alert emails to the caller', response: problems(401, 403, 404) } },
      async (request, reply) => {
        if (!(await deleteMyNotifications(pool, request))) return problem(reply, 404, 'Not Found', 'no alert-email address is set');
        return reply.code(204).send();
      },
    );

    app.get(
      '/v1/notification-subscriptions',
      { config: { roles: ['admin'] }, schema: { tags, operationId: 'listNotificationSubscriptions', summary: 'Every alert-email subscription: user, role held, address, expiry', response: problems(401, 403) } },
      async (request) => ({ items: await notificationSubscriptions(pool, request) }),
    );

    app.delete(
      '/v1/notification-subscriptions/:id',
      {
        config: { roles: ['admin'] },
        schema: { tags, operationId: 'revokeNotificationSubscription', summary: 'Revoke a user’s alert-email subscription', params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }), response: problems(401, 403, 404) },
      },
      async (request, reply) => {
        if (!(await revokeNotifications(pool, request, request.params.id))) return problem(reply, 404, 'Not Found', `no alert-email subscription for user ${request.params.id}`);
        return reply.code(204).send();
      },
    );
  };
}

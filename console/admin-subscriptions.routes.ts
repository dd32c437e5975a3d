import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { userOf } from '../platform/http/auth.js';
import { createWebhook, deleteWebhook, DEFAULT_SUBSCRIPTIONS, renewOwnWebhook, webhooksOf } from '../alerts/webhooks.routes.js';
import { Contact, deleteMyNotifications, myNotifications, notificationSubscriptions, renewMyNotifications, revokeNotifications, setMyNotifications } from '../alerts/email.routes.js';
import { page, text, validate, type FieldError, type Form } from './admin-kit.js';
import type { ConsoleDeps } from './console.plugin.js';

const MANAGERS = ['offender_manager', 'supervisor'] as const;
const session = <R extends readonly string[]>(roles: R) => ({ config: { roles, session: true }, schema: { hide: true } });
type Params = { id: string };
const UrlBody = Type.Object({ url: Type.String({ minLength: 1, maxLength: 2000 }) });

/**
 * Webhooks and alert-email subscriptions in the console (issue 11 §7), through the API's own
 * functions (alerts/webhooks.routes.ts, alerts/email.routes.ts): managers and supervisors
 * register, renew and delete their own; admins list everyone's and revoke any (audited).
 * A webhook's secret is generated here (32 random bytes) and shown once on the result page.
 */
export function subscriptionRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  const webhookDeps = deps.admin?.webhooks ?? { pool, allowPrivate: false, settings: DEFAULT_SUBSCRIPTIONS };
  const days = webhookDeps.settings.days;
  const emailEnabled = deps.admin?.emailEnabled ?? false;
  return async (app: FastifyInstance): Promise<void> => {
    const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) => reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: `There is no ${what} of yours with this reference.` }));

    // ---- webhooks
    const webhookList = async (request: FastifyRequest, reply: FastifyReply, status = 200, extra: { url?: string; errors?: FieldError[] } = {}) => {
      const rows = await webhooksOf(pool, request);
      return reply.code(status).view('admin/webhooks.njk', page(request, { title: 'Webhooks', nav: 'webhooks', rows, days, url: extra.url ?? '', errors: extra.errors, renewed: (request.query as Record<string, unknown>)?.renewed === '1', secretsOff: !webhookDeps.settings.secretsKey }));
    };
    app.get('/webhooks', session([...MANAGERS, 'admin'] as const), async (request, reply) => webhookList(request, reply));
    app.post('/webhooks', session(MANAGERS), async (request, reply) => {
      const url = text(request.body as Form, 'url');
      const errors = validate(request, UrlBody, { url }, { url: 'Enter the webhook’s address (https, at most 2000 characters)' });
      if (errors.length) return webhookList(request, reply, 400, { url, errors });
      const secret = randomBytes(32).toString('base64url');
      const r = await createWebhook(webhookDeps, request, url, secret);
      if (!r.ok) return webhookList(request, reply, r.status, { url, errors: [{ text: r.detail.charAt(0).toUpperCase() + r.detail.slice(1), href: '#url' }] });
      // the secret exists only in this response (stored encrypted): never cached, never shown again
      return reply.code(201).view('admin/webhook-registered.njk', page(request, { title: 'Webhook registered', nav: 'webhooks', webhook: r.webhook, secret }));
    });
    app.post<{ Params: Params }>('/webhooks/:id/renew', session(MANAGERS), async (request, reply) => {
      if (!(await renewOwnWebhook(pool, request, webhookDeps.settings, request.params.id))) return notFound(request, reply, 'webhook');
      return reply.code(303).header('location', '/console/webhooks?renewed=1').send();
    });
    app.post<{ Params: Params }>('/webhooks/:id/delete', session([...MANAGERS, 'admin'] as const), async (request, reply) => {
      if (!(await deleteWebhook(pool, request, request.params.id))) return notFound(request, reply, 'webhook');
      return reply.code(303).header('location', '/console/webhooks').send();
    });

    // ---- alert email: one's own
    const emailPage = async (request: FastifyRequest, reply: FastifyReply, status = 200, extra: { email?: string; errors?: FieldError[] } = {}) => {
      const row = await myNotifications(pool, request);
      return reply.code(status).view('admin/notifications.njk', page(request, { title: 'Alert emails', nav: 'notifications', row, expired: row ? row.expires_at <= new Date() : false, days, emailEnabled, email: extra.email ?? row?.email ?? '', errors: extra.errors, role: userOf(request).role }));
    };
    app.get('/notifications', session(MANAGERS), async (request, reply) => emailPage(request, reply));
    app.post('/notifications', session(MANAGERS), async (request, reply) => {
      const email = text(request.body as Form, 'email');
      const errors = validate(request, Contact, { email }, { email: 'Enter an email address in the correct format, like name@example.gov.uk' });
      if (errors.length) return emailPage(request, reply, 400, { email, errors });
      await setMyNotifications(pool, request, email, days);
      return reply.code(303).header('location', '/console/notifications').send();
    });
    app.post('/notifications/renew', session(MANAGERS), async (request, reply) => {
      if (!(await renewMyNotifications(pool, request, days))) return notFound(request, reply, 'alert-email address');
      return reply.code(303).header('location', '/console/notifications').send();
    });
    app.post('/notifications/delete', session(MANAGERS), async (request, reply) => {
      if (!(await deleteMyNotifications(pool, request))) return notFound(request, reply, 'alert-email address');
      return reply.code(303).header('location', '/console/notifications').send();
    });

    // ---- alert email: everyone's (admins)
    app.get('/admin/notifications', session(['admin'] as const), async (request, reply) => {
      const rows = await notificationSubscriptions(pool, request);
      return reply.view('admin/notification-subscriptions.njk', page(request, { title: 'Alert-email subscriptions', nav: 'admin-notifications', rows, emailEnabled }));
    });
    app.post<{ Params: Params }>('/admin/notifications/:id/revoke', session(['admin'] as const), async (request, reply) => {
      if (!(await revokeNotifications(pool, request, request.params.id))) return notFound(request, reply, 'alert-email subscription');
      return reply.code(303).header('location', '/console/admin/notifications').send();
    });
  };
}

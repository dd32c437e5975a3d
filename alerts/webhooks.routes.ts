import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { lockKeys, rollbackWith, withTransaction, type Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import type { Config } from '../platform/config.js';
import { encryptSecret, parseSecretsKey } from './secrets.js';
import type { Resolver } from './webhook-address.js';
import { urlProblem } from './webhooks.js';
import { countActiveWebhooks, endWebhook, insertWebhook, listWebhooks, renewWebhook, type WebhookRow } from './webhooks.repo.js';

/** What subscriptions (webhooks, alert email) are held to: finding 11 of issue 9. */
export interface SubscriptionSettings {
  /** SUBSCRIPTION_DAYS: a subscription lasts this long from registration or its last renewal */
  days: number;
  /** WEBHOOKS_PER_USER: most webhooks (not deleted or revoked) one user may hold */
  webhooksPerUser: number;
  /** SECRETS_KEY, parsed; null: webhooks cannot be registered (503) */
  secretsKey: Buffer | null;
}

export const subscriptionSettings = (c: Pick<Config, 'SUBSCRIPTION_DAYS' | 'WEBHOOKS_PER_USER' | 'SECRETS_KEY'>): SubscriptionSettings => ({
  days: c.SUBSCRIPTION_DAYS,
  webhooksPerUser: c.WEBHOOKS_PER_USER,
  secretsKey: c.SECRETS_KEY ? parseSecretsKey(c.SECRETS_KEY) : null,
});

export const DEFAULT_SUBSCRIPTIONS: SubscriptionSettings = { days: 90, webhooksPerUser: 10, secretsKey: null };

/** RFC 9457 problem body, for the OpenAPI document's 4xx answers. */
export const ProblemBody = Type.Object(
  { type: Type.String(), title: Type.String(), status: Type.Integer(), detail: Type.Optional(Type.String()), instance: Type.Optional(Type.String()) },
  { additionalProperties: true, description: 'RFC 9457 problem details' },
);
/** A route's answers for the OpenAPI document: its success body as JSON, its 4xx/5xx as problems. */
export const problems = (...codes: number[]) => ({
  '2xx': Type.Unknown({ description: 'success' }),
  ...Object.fromEntries(codes.map((c) => [c, { description: 'problem details', content: { 'application/problem+json': { schema: ProblemBody } } }])),
});

const MANAGERS = ['offender_manager', 'supervisor'] as const;
const WebhookId = Type.Object({ id: Type.String({ maxLength: 64 }) });
const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

export interface WebhookDeps {
  pool: Pool;
  allowPrivate: boolean;
  settings: SubscriptionSettings;
  resolve?: Resolver;
}

type Failure = { ok: false; status: 400 | 409 | 503; detail: string };

/**
 * Registers a webhook for the caller (the API and the console both come here): the address
 * check, the per-user cap, the encrypted secret and the audit row.
 */
export async function createWebhook(deps: WebhookDeps, request: FastifyRequest, url: string, secret: string): Promise<{ ok: true; webhook: { id: string; url: string; created_at: Date; expires_at: Date } } | Failure> {
  const { pool, settings } = deps;
  const why = await urlProblem(url, deps.allowPrivate, deps.resolve);
  if (why) return { ok: false, status: 400, detail: why };
  if (!settings.secretsKey) return { ok: false, status: 503, detail: 'webhooks are off: the service has no SECRETS_KEY to store their secrets with' };
  const user = userOf(request);
  const id = randomUUID();
  const created = await withTransaction(pool, async (tx) => {
    await lockKeys(tx, 'webhooks:', [user.id]); // one registration per user at a time
    const held = await countActiveWebhooks(tx, user.id);
    if (held >= settings.webhooksPerUser) return rollbackWith({ held });
    const row = await insertWebhook(tx, { id, ownerId: user.id, ownerRole: user.role, url, secretEnc: encryptSecret(settings.secretsKey!, id, secret), days: settings.days });
    await audit(tx, request, { action: 'webhook.create', detail: { webhook_id: id, url } });
    return { row };
  });
  if ('held' in created) return { ok: false, status: 409, detail: `at most ${settings.webhooksPerUser} webhooks per user (WEBHOOKS_PER_USER); you have ${created.held}: delete one first` };
  return { ok: true, webhook: { id, url, created_at: created.row.created_at, expires_at: created.row.expires_at } };
}

/** The caller's webhooks; for an admin every webhook (that read is audited). */
export async function webhooksOf(pool: Pool, request: FastifyRequest): Promise<WebhookRow[]> {
  const user = userOf(request);
  if (user.role !== 'admin') return listWebhooks(pool, user.id);
  const items = await listWebhooks(pool, null);
  await audit(pool, request, { action: 'webhooks.read', detail: { count: items.length } });
  return items;
}

/** Renews the caller's own webhook; null when it is not theirs (or not a webhook id). */
export async function renewOwnWebhook(pool: Pool, request: FastifyRequest, settings: SubscriptionSettings, id: string): Promise<Date | null> {
  const user = userOf(request);
  if (!isUuid(id)) return null;
  const expiresAt = await renewWebhook(pool, id, user.id, user.role, settings.days);
  if (expiresAt) await audit(pool, request, { action: 'webhook.renew', detail: { webhook_id: id } });
  return expiresAt;
}

/** Deletes the caller's own webhook, or (an admin) revokes anyone's; false when there is none to end. */
export async function deleteWebhook(pool: Pool, request: FastifyRequest, id: string): Promise<boolean> {
  const user = userOf(request);
  if (!isUuid(id)) return false;
  const admin = user.role === 'admin';
  const ownerId = await endWebhook(pool, id, { id: user.id, admin });
  if (!ownerId) return false;
  await audit(pool, request, { action: admin ? 'webhook.revoke' : 'webhook.delete', detail: { webhook_id: id, owner_id: ownerId } });
  return true;
}

/**
 * Webhooks (contract §5, §6): registered by a manager or supervisor for what their role lets
 * them see, for SUBSCRIPTION_DAYS, renewable by their owner (which also brings the role the
 * webhook acts with up to date); an expired webhook delivers nothing. Owners list and delete
 * their own; admins list all and revoke any. Secrets are encrypted before they are stored.
 */
export function webhookRoutes(pool: Pool, allowPrivate: boolean, settings: SubscriptionSettings, resolve?: Resolver): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/v1/webhooks',
      {
        config: { roles: MANAGERS },
        schema: {
          tags: ['webhooks'],
          operationId: 'createWebhook',
          summary: 'Register a webhook for the caller’s caseload (a supervisor: every subject, and escalations); it expires after SUBSCRIPTION_DAYS unless renewed',
          body: Type.Object({ url: Type.String({ maxLength: 2000 }), secret: Type.String({ minLength: 16, maxLength: 256 }) }, { additionalProperties: false }),
          response: problems(400, 401, 403, 409, 503),
        },
      },
      async (request, reply) => {
        const r = await createWebhook({ pool, allowPrivate, settings, resolve }, request, request.body.url, request.body.secret);
        if (!r.ok) return problem(reply, r.status, r.status === 400 ? 'Bad Request' : r.status === 409 ? 'Conflict' : 'Service Unavailable', r.detail);
        return reply.code(201).send(r.webhook);
      },
    );

    app.get(
      '/v1/webhooks',
      {
        config: { roles: [...MANAGERS, 'admin'] },
        schema: { tags: ['webhooks'], operationId: 'listWebhooks', summary: 'The caller’s webhooks (not deleted); for an admin every webhook with its owner and status', response: problems(401, 403) },
      },
      async (request) => ({ items: await webhooksOf(pool, request) }),
    );

    app.post(
      '/v1/webhooks/:id/renew',
      {
        config: { roles: MANAGERS },
        schema: {
          tags: ['webhooks'],
          operationId: 'renewWebhook',
          summary: 'Renew the caller’s webhook for SUBSCRIPTION_DAYS from now (also when expired); it then acts with the caller’s current role',
          params: WebhookId,
          response: problems(401, 403, 404),
        },
      },
      async (request, reply) => {
        const expiresAt = await renewOwnWebhook(pool, request, settings, request.params.id);
        if (!expiresAt) return problem(reply, 404, 'Not Found', 'webhook not found');
        return { id: request.params.id, expires_at: expiresAt };
      },
    );

    app.delete(
      '/v1/webhooks/:id',
      {
        config: { roles: [...MANAGERS, 'admin'] },
        schema: { tags: ['webhooks'], operationId: 'deleteWebhook', summary: 'Delete the caller’s webhook; an admin revokes anyone’s', params: WebhookId, response: problems(401, 403, 404) },
      },
      async (request, reply) => {
        if (!(await deleteWebhook(pool, request, request.params.id))) return problem(reply, 404, 'Not Found', 'webhook not found');
        return reply.code(204).send();
      },
    );
  };
}

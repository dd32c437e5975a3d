import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { lockKeys, rollbackWith, withTransaction, type Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import type { Config } from '../platform/config.js';
import { encryptSecret, parseSecretsKey } from './secrets.js';
import type { Resolver } from './webhook-address.js';
import { urlProblem } from './webhooks.js';
import { countActiveWebhooks, endWebhook, insertWebhook, listWebhooks, renewWebhook } from './webhooks.repo.js';

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
        const why = await urlProblem(request.body.url, allowPrivate, resolve);
        if (why) return problem(reply, 400, 'Bad Request', why);
        if (!settings.secretsKey) return problem(reply, 503, 'Service Unavailable', 'webhooks are off: the service has no SECRETS_KEY to store their secrets with');
        const user = userOf(request);
        const id = randomUUID();
        const created = await withTransaction(pool, async (tx) => {
          await lockKeys(tx, 'webhooks:', [user.id]); // one registration per user at a time
          const held = await countActiveWebhooks(tx, user.id);
          if (held >= settings.webhooksPerUser) return rollbackWith({ held });
          const row = await insertWebhook(tx, { id, ownerId: user.id, ownerRole: user.role, url: request.body.url, secretEnc: encryptSecret(settings.secretsKey!, id, request.body.secret), days: settings.days });
          await audit(tx, request, { action: 'webhook.create', detail: { webhook_id: id, url: request.body.url } });
          return { row };
        });
        if ('held' in created) {
          return problem(reply, 409, 'Conflict', `at most ${settings.webhooksPerUser} webhooks per user (WEBHOOKS_PER_USER); you have ${created.held}: delete one first`);
        }
        return reply.code(201).send({ id, url: request.body.url, created_at: created.row.created_at, expires_at: created.row.expires_at });
      },
    );

    app.get(
      '/v1/webhooks',
      {
        config: { roles: [...MANAGERS, 'admin'] },
        schema: { tags: ['webhooks'], operationId: 'listWebhooks', summary: 'The caller’s webhooks (not deleted); for an admin every webhook with its owner and status', response: problems(401, 403) },
      },
      async (request) => {
        const user = userOf(request);
        if (user.role === 'admin') {
          const items = await listWebhooks(pool, null);
          await audit(pool, request, { action: 'webhooks.read', detail: { count: items.length } });
          return { items };
        }
        return { items: await listWebhooks(pool, user.id) };
      },
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
        const user = userOf(request);
        if (!isUuid(request.params.id)) return problem(reply, 404, 'Not Found', 'webhook not found');
        const expiresAt = await renewWebhook(pool, request.params.id, user.id, user.role, settings.days);
        if (!expiresAt) return problem(reply, 404, 'Not Found', 'webhook not found');
        await audit(pool, request, { action: 'webhook.renew', detail: { webhook_id: request.params.id } });
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
        const user = userOf(request);
        if (!isUuid(request.params.id)) return problem(reply, 404, 'Not Found', 'webhook not found');
        const admin = user.role === 'admin';
        const ownerId = await endWebhook(pool, request.params.id, { id: user.id, admin });
        if (!ownerId) return problem(reply, 404, 'Not Found', 'webhook not found');
        await audit(pool, request, { action: admin ? 'webhook.revoke' : 'webhook.delete', detail: { webhook_id: request.params.id, owner_id: ownerId } });
        return reply.code(204).send();
      },
    );
  };
}

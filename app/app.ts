import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { Pool, TxClient } from '../platform/db.js';
import { registerAuth, type Role, type User } from '../platform/http/auth.js';
import { problem, Problem } from '../platform/http/problem.js';
import { registerReasons } from '../platform/http/reason.js';
import { documentProblems, documentOperation } from '../platform/http/openapi.js';
import { registryRoutes } from '../registry/registry.routes.js';
import { auditRoutes } from '../registry/audit.routes.js';
import { subjectDataRoutes } from '../registry/subject-data.routes.js';
import { readingsRoutes } from '../ingest/readings.routes.js';
import { zonesRoutes } from '../geofence/zones.routes.js';
import { sobrietyRoutes } from '../alcohol/sobriety.routes.js';
import { reviewRoutes } from '../alcohol/review.routes.js';
import { reviewInTransaction } from '../alcohol/review.js';
import { alertsRoutes } from '../alerts/alerts.routes.js';
import { emailRoutes } from '../alerts/email.routes.js';
import { DEFAULT_SUBSCRIPTIONS, webhookRoutes, type SubscriptionSettings } from '../alerts/webhooks.routes.js';
import type { Resolver } from '../alerts/webhook-address.js';
import { registerFatigueMetrics } from '../alerts/fatigue.metrics.js';
import { registerIntegrityMetrics } from '../health/integrity.metrics.js';
import { integrityRoutes } from '../health/integrity.routes.js';
import { DEFAULT_INTEGRITY, type IntegrityParams } from '../health/integrity.js';
import type { FeedHub } from '../alerts/feed.js';
import { alertStreamRoutes, DEFAULT_STREAM_SETTINGS, type StreamSettings } from '../alerts/stream.routes.js';
import { createAlertStreams } from '../alerts/stream.js';
import type { BrokerAdmin } from '../registry/dynsec.js';
import type { Queue } from 'bullmq';
import { crimeBatchRoutes } from '../crime/crime.routes.js';
import { crimeRoutes } from '../crime/crimes.routes.js';
import type { CrimeJob } from '../crime/match.job.js';
import cookie from '@fastify/cookie';
import { consolePlugin, consoleSessionAuth } from '../console/console.plugin.js';
import type { ConsoleSettings } from '../console/settings.js';

export interface AppDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  verifyToken: (token: string) => Promise<User>;
  /** named checks for /readyz (database, redis, mqtt, …) */
  readiness: () => Promise<Record<string, boolean>>;
  /** the alert feed for the live stream (null: the stream answers 503) */
  feed?: FeedHub | null;
  /** the live stream's limits (default: DEFAULT_STREAM_SETTINGS) */
  stream?: StreamSettings;
  /** provisions devices at the broker (dynamic security), when configured */
  brokerAdmin?: BrokerAdmin | null;
  allowPrivateWebhooks?: boolean;
  /** subscription lifetime, webhook cap and the key of webhook secrets (defaults: 90 days, 10, none) */
  subscriptions?: SubscriptionSettings;
  /** host name resolver for webhook URL checks (tests inject one) */
  resolveHost?: Resolver;
  /** whether the service sends alert email (SMTP configured) */
  emailEnabled?: boolean;
  /** the role that reviews drinking events and alcohol tampers (ALCOHOL_REVIEW_ROLE; default supervisor) */
  alcoholReviewRole?: Role;
  /** requests per user per minute */
  rateLimitPerMinute?: number;
  /** monitoring integrity's cadences and thresholds (default DEFAULT_INTEGRITY; MONITORING_* settings) */
  monitoring?: IntegrityParams;
  /** most fixes one zone re-evaluation reads (REEVALUATE_MAX_FIXES) */
  reevaluateMaxFixes?: number;
  /** the crime-matching queue (null or absent: runs wait for the worker's maintenance tick) */
  crimeQueue?: Queue<CrimeJob> | null;
  /** the console's sign-in settings (console/settings.ts; default: no development sign-in, Secure cookie) */
  console?: ConsoleSettings;
  /** facts shown by /readyz, e.g. the storage path */
  info?: () => Record<string, unknown>;
}

/** Builds the HTTP API without listening (tests use `inject`; app/main.ts listens). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; validationContext?: string }, request, reply) => {
    if (err.validation) {
      return problem(reply, 400, 'Bad Request', `${err.validationContext ?? 'request'}: ${err.message.replace(/^(body|querystring|params|headers)\/?\s*/, '')}`);
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return problem(reply, status, 'Internal Server Error', 'the request could not be completed; it has been logged');
    }
    return problem(reply, status, httpTitle(status), err.message);
  });
  app.setNotFoundHandler((request, reply) => problem(reply, 404, 'Not Found', `no route ${request.method} ${request.url.split('?')[0]}`));

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'tagwatch API',
        version: '1',
        description: 'Contract v1 (docs/contract.md §6). Errors are RFC 9457 problem details (application/problem+json).',
        license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
      },
      // relative: the API is served from the same origin as this document
      servers: [{ url: '/', description: 'this tagwatch deployment' }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
    transform: documentOperation,
    // shared schemas (Problem) appear under their own $id in components.schemas
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.addSchema(Problem);
  app.addHook('onRoute', documentProblems);
  // security headers; the docs page needs its own scripts and styles
  await app.register(helmet, { contentSecurityPolicy: false });
  const consoleSettings = deps.console ?? { devSignIn: false, secureCookie: true };
  await app.register(cookie);
  registerAuth(app, deps.verifyToken, consoleSessionAuth(deps.pool, consoleSettings));
  registerReasons(app);
  if (!app.getSchema('Problem')) app.addSchema(Problem);
  // PostgreSQL text cannot hold NUL: refuse it at the door rather than fail in the database
  app.addHook('preValidation', async (request, reply) => {
    if (/%00/.test(request.url) || (request.body !== undefined && !Buffer.isBuffer(request.body) && JSON.stringify(request.body).includes('\\u0000'))) {
      return problem(reply, 400, 'Bad Request', 'NUL characters are not allowed');
    }
  });
  // per-user rate limit (after authentication, so the key is the user, not the address)
  await app.register(rateLimit, {
    max: deps.rateLimitPerMinute ?? 600,
    timeWindow: 60_000,
    keyGenerator: (request) => request.user?.id ?? request.ip,
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(new Error(`rate limit of ${ctx.max} requests per minute exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`), { statusCode: 429 }),
  });

  app.get('/healthz', { config: { public: true }, schema: { operationId: 'getHealth', summary: 'Liveness: the process answers', tags: ['operations'], security: [] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { public: true }, schema: { operationId: 'getReadiness', summary: 'Readiness: database, Redis and broker reachable (503 when not)', tags: ['operations'], security: [] } }, async (_req, reply) => {
    const checks = await deps.readiness();
    const ready = Object.values(checks).every(Boolean);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks, ...(deps.info?.() ?? {}) });
  });
  registerFatigueMetrics(deps.metrics, deps.pool);
  registerIntegrityMetrics(deps.metrics, deps.pool, deps.monitoring ?? DEFAULT_INTEGRITY);
  app.get('/metrics', { config: { roles: ['admin', 'supervisor'] }, schema: { operationId: 'getMetrics', summary: 'Prometheus metrics', tags: ['operations'] } }, async (_req, reply) => {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  await app.register(registryRoutes(deps.pool, deps.brokerAdmin ?? null));
  await app.register(readingsRoutes(deps.pool));
  await app.register(auditRoutes(deps.pool));
  await app.register(subjectDataRoutes(deps.pool, deps.brokerAdmin ?? null));
  await app.register(zonesRoutes(deps.pool, { reevaluateMaxFixes: deps.reevaluateMaxFixes }));
  await app.register(sobrietyRoutes(deps.pool));
  await app.register(integrityRoutes(deps.pool, deps.monitoring ?? DEFAULT_INTEGRITY));
  const reviewRole = deps.alcoholReviewRole ?? 'supervisor';
  await app.register(reviewRoutes(deps.pool, reviewRole));
  const alertDeps = {
    pool: deps.pool,
    feed: deps.feed ?? null,
    reviewRole,
    reviewFalseAlarm: (db: TxClient, user: User, alertId: string, note: string | null) => reviewInTransaction(db, user, alertId, 'not_confirmed', note),
  };
  await app.register(alertsRoutes(alertDeps));
  // one set of live streams for the API and the console: the limits count both
  const streams = createAlertStreams({ pool: deps.pool, feed: deps.feed ?? null, metrics: deps.metrics, settings: deps.stream ?? DEFAULT_STREAM_SETTINGS });
  await app.register(alertStreamRoutes(streams));
  const subscriptions = deps.subscriptions ?? DEFAULT_SUBSCRIPTIONS;
  await app.register(webhookRoutes(deps.pool, deps.allowPrivateWebhooks ?? false, subscriptions, deps.resolveHost));
  await app.register(emailRoutes(deps.pool, deps.emailEnabled ?? false, subscriptions.days));
  await app.register(crimeBatchRoutes({ pool: deps.pool, queue: deps.crimeQueue ?? null, logger: deps.logger }));
  await app.register(crimeRoutes({ pool: deps.pool, metrics: deps.metrics }));
  await app.register(consolePlugin({ pool: deps.pool, settings: consoleSettings, alerts: alertDeps, streams, admin: { broker: deps.brokerAdmin ?? null, webhooks: { pool: deps.pool, allowPrivate: deps.allowPrivateWebhooks ?? false, settings: subscriptions, resolve: deps.resolveHost }, emailEnabled: deps.emailEnabled ?? false }, crime: { pool: deps.pool, queue: deps.crimeQueue ?? null, logger: deps.logger, metrics: deps.metrics } }), { prefix: '/console' });
  return app as unknown as FastifyInstance;
}

function httpTitle(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 429: 'Too Many Requests' } as Record<number, string>)[status] ?? 'Error';
}

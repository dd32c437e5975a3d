import type { FastifyInstance } from 'fastify';
import { logRedisErrors, readiness, type Part, type Runtime } from '../platform/runtime.js';
import { buildApp } from './app.js';
import { consoleSettings } from '../console/settings.js';
import { authOptions, createTokenVerifier } from '../platform/http/auth.js';
import { createFeedHub } from '../alerts/feed.js';
import { streamSettings } from '../alerts/stream.routes.js';
import { connectBrokerAdmins } from '../registry/dynsec.js';
import { brokerUrls } from '../platform/config.js';
import { readBrokerCa } from '../registry/ca.js';
import { prepareWebhookSecrets } from '../alerts/secrets.js';
import { subscriptionSettings } from '../alerts/webhooks.routes.js';
import { Queue } from 'bullmq';
import { CRIME_QUEUE, type CrimeJob } from '../crime/match.job.js';
import { integrityParams } from '../health/integrity.js';

export async function startApi(rt: Runtime, parts: () => Part[]): Promise<Part & { app: FastifyInstance }> {
  const subscriptions = subscriptionSettings(rt.config);
  await prepareWebhookSecrets(rt.pool, subscriptions.secretsKey, rt.logger); // refuses to start without SECRETS_KEY once webhooks exist
  const feed = createFeedHub(rt.config.DATABASE_URL, rt.pool, rt.logger);
  await feed.start();
  const brokerAdmin =
    rt.config.MQTT_ADMIN_USERNAME && rt.config.MQTT_ADMIN_PASSWORD
      ? await connectBrokerAdmins(brokerUrls(rt.config.MQTT_URL), rt.config.MQTT_ADMIN_USERNAME, rt.config.MQTT_ADMIN_PASSWORD, {
          serviceUsernames: [rt.config.MQTT_USERNAME],
          ca: readBrokerCa(rt.config.MQTT_CA_FILE),
        })
      : null;
  if (!brokerAdmin) rt.logger.warn('MQTT_ADMIN_USERNAME/PASSWORD not set: devices are not provisioned at the broker');
  const crimeQueue = new Queue<CrimeJob>(CRIME_QUEUE, { connection: rt.redis, prefix: rt.config.QUEUE_PREFIX });
  logRedisErrors(rt, 'crime', crimeQueue);
  const app = await buildApp({
    console: consoleSettings(rt.config),
    crimeQueue,
    emailEnabled: rt.config.SMTP_URL !== undefined,
    feed,
    stream: streamSettings(rt.config),
    brokerAdmin,
    allowPrivateWebhooks: rt.config.WEBHOOK_ALLOW_PRIVATE,
    subscriptions,
    alcoholReviewRole: rt.config.ALCOHOL_REVIEW_ROLE,
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    verifyToken: createTokenVerifier(authOptions(rt.config)),
    readiness: () => readiness(rt, parts()),
    info: () => ({ storage: rt.storage }),
    reevaluateMaxFixes: rt.config.REEVALUATE_MAX_FIXES,
    monitoring: integrityParams(rt.config),
  });
  await app.listen({ port: rt.config.PORT, host: rt.config.HOST });
  return {
    name: 'api',
    app,
    checks: { alert_feed: () => feed.connected },
    async stop() {
      await feed.close();
      await app.close();
      await crimeQueue.close();
      await brokerAdmin?.close();
    },
  };
}


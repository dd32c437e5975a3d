import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { createPool, storageMode, type Pool } from './db.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { createDeviceReadingsQueue, createRedis, createSignaler, DEVICE_READINGS_QUEUE, restoreDirty, takeDirty, type DeviceReadingsJob } from './queues.js';
import { STREAMS } from '../ingest/telemetry.js';
import { evaluateDeviceGeofence, tickCurfews } from '../geofence/evaluate.job.js';
import { evaluateDeviceAlcohol } from '../alcohol/evaluate.job.js';
import { paramsFrom } from '../alcohol/params.js';
import { evaluateDeviceHealth, tickHealth } from '../alerts/health.job.js';
import { createFeedHub } from '../alerts/feed.js';
import { connectBrokerAdmin } from './broker/dynsec.js';
import { createWebhookWorker, dispatchFeed, requeuePending, WEBHOOK_QUEUE, type DeliveryJob } from '../alerts/webhooks.js';
import { applyRetentionPolicy, deleteExpiredReadings } from './retention.js';
import { buildApp } from './http/app.js';
import { createTokenVerifier } from './http/auth.js';
import { createBatcher } from '../ingest/batcher.js';
import { createIngestConsumer } from '../ingest/consumer.js';

/** Shared connections of one process; each part below uses what it needs. */
export interface Runtime {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  pool: Pool;
  redis: Redis;
  storage: 'timescaledb' | 'postgresql';
}

export async function createRuntime(config: Config, logger: Logger, metrics: Metrics): Promise<Runtime> {
  const pool = createPool(config.DATABASE_URL, config.DB_POOL_MAX, logger);
  const redis = createRedis(config.REDIS_URL);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  const storage = await storageMode(pool);
  return { config, logger, metrics, pool, redis, storage };
}

export interface Part {
  name: string;
  /** readiness checks this part adds to /readyz */
  checks?: Record<string, () => boolean>;
  stop(): Promise<void>;
}

/** Ingest: MQTT consumer → batched idempotent writes → device signals on BullMQ. */
export async function startIngest(rt: Runtime): Promise<Part & { queue: Queue<DeviceReadingsJob> }> {
  const queue = createDeviceReadingsQueue(rt.redis, rt.config.QUEUE_PREFIX);
  const signaler = createSignaler(queue, rt.redis, rt.config.QUEUE_PREFIX, (err) => rt.logger.warn({ err: err.message }, 'device signal failed; retrying'));
  const batcher = createBatcher({
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    maxBatch: rt.config.INGEST_MAX_BATCH,
    slots: rt.config.INGEST_DB_SLOTS,
    onCommitted: (dirty) => signaler.signal(dirty),
  });
  const consumer = createIngestConsumer({
    url: rt.config.MQTT_URL,
    username: rt.config.MQTT_USERNAME,
    password: rt.config.MQTT_PASSWORD,
    connections: rt.config.INGEST_CONNECTIONS,
    instance: rt.config.INGEST_INSTANCE,
    shareGroup: rt.config.MQTT_SHARE_GROUP,
    retentionDays: rt.config.RETENTION_DAYS,
    batcher,
    logger: rt.logger,
  });
  await consumer.start();
  return {
    name: 'ingest',
    queue,
    checks: { mqtt: () => consumer.connected },
    async stop() {
      // Let what was taken commit (and be acknowledged), then close the sessions: anything
      // still unacknowledged is redelivered by the broker to the next session.
      await Promise.race([batcher.idle(), new Promise((r) => setTimeout(r, 5000))]);
      batcher.stop();
      await consumer.stop();
      await signaler.flush().catch(() => undefined);
      signaler.close();
      await queue.close();
    },
  };
}

export const MAINTENANCE_QUEUE = 'maintenance';
export const EVALUATION_CONCURRENCY = 8;

/**
 * Worker: evaluates devices with new readings (queue `device-readings`), and runs the scheduled
 * maintenance jobs: the curfew clock every minute and retention on plain PostgreSQL hourly.
 */
export async function startWorker(rt: Runtime): Promise<Part> {
  const prefix = rt.config.QUEUE_PREFIX;
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: rt.redis, prefix });
  await maintenance.upsertJobScheduler('retention', { every: 3_600_000 }, { name: 'retention' });
  await maintenance.upsertJobScheduler('curfew-tick', { every: 60_000 }, { name: 'curfew-tick' });
  await maintenance.upsertJobScheduler('health-tick', { every: 60_000 }, { name: 'health-tick' });
  await maintenance.upsertJobScheduler('webhook-requeue', { every: 60_000 }, { name: 'webhook-requeue' });
  const webhookQueue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection: rt.redis, prefix });
  const webhookWorker = createWebhookWorker(rt.pool, rt.redis.duplicate(), prefix, rt.logger);
  const dispatcher = createDispatcher(rt, webhookQueue);
  const deps = { pool: rt.pool, logger: rt.logger, metrics: rt.metrics };
  const alcoholParams = paramsFrom(rt.config.ALCOHOL_PARAMS);
  const maintenanceWorker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      if (job.name === 'curfew-tick') return { raised: (await tickCurfews(deps, Date.now())).length };
      if (job.name === 'health-tick') {
        const r = await tickHealth(deps, Date.now(), rt.config.ESCALATE_AFTER_MINUTES * 60_000);
        return { raised: r.raised.length, escalated: r.escalated.length };
      }
      if (job.name === 'webhook-requeue') return { requeued: await requeuePending(rt.pool, webhookQueue) };
      if (rt.storage === 'timescaledb') return { mode: 'timescaledb', deleted: 0 }; // the policy drops chunks
      const deleted = await deleteExpiredReadings(rt.pool, rt.config.RETENTION_DAYS, new Date());
      rt.logger.info({ deleted, days: rt.config.RETENTION_DAYS }, 'retention: expired readings deleted');
      return { mode: 'postgresql', deleted };
    },
    { connection: rt.redis.duplicate(), prefix },
  );
  maintenanceWorker.on('failed', (job, err) => rt.logger.warn({ job: job?.name, err: err.message }, 'maintenance job failed'));
  const evaluation = new Worker<DeviceReadingsJob>(
    DEVICE_READINGS_QUEUE,
    async (job) => {
      await job.removeDeduplicationKey(); // readings committed from now on get a new job
      const dirty = await takeDirty(rt.redis, prefix, job.data.deviceId, STREAMS);
      try {
        const geofence = dirty.gps !== undefined || job.data.sweep ? await evaluateDeviceGeofence(deps, job.data.deviceId, dirty.gps ?? null) : null;
        const alcohol =
          dirty.alcohol !== undefined || job.data.sweep
            ? await evaluateDeviceAlcohol({ ...deps, params: alcoholParams }, job.data.deviceId, dirty.alcohol ?? null, Date.now())
            : [];
        const health = await evaluateDeviceHealth(deps, job.data.deviceId, dirty, Date.now());
        return { fixes: geofence?.fixes ?? 0, alerts: (geofence?.raised.length ?? 0) + alcohol.length + health.length };
      } catch (err) {
        await restoreDirty(rt.redis, prefix, job.data.deviceId, dirty);
        throw err;
      }
    },
    { connection: rt.redis.duplicate(), prefix, concurrency: EVALUATION_CONCURRENCY },
  );
  evaluation.on('failed', (job, err) => rt.logger.warn({ device: job?.data.deviceId, err: err.message }, 'evaluation failed; retried with backoff'));
  await applyRetentionPolicy(rt.pool, rt.config.RETENTION_DAYS);
  return {
    name: 'worker',
    async stop() {
      await dispatcher.close();
      await evaluation.close();
      await webhookWorker.close();
      await webhookQueue.close();
      await maintenanceWorker.close();
      await maintenance.close();
    },
  };
}

export async function startApi(rt: Runtime, parts: () => Part[]): Promise<Part & { app: FastifyInstance }> {
  const feed = createFeedHub(rt.config.DATABASE_URL, rt.pool, rt.logger);
  await feed.start();
  const brokerAdmin =
    rt.config.MQTT_ADMIN_USERNAME && rt.config.MQTT_ADMIN_PASSWORD
      ? await connectBrokerAdmin(rt.config.MQTT_URL, rt.config.MQTT_ADMIN_USERNAME, rt.config.MQTT_ADMIN_PASSWORD)
      : null;
  if (!brokerAdmin) rt.logger.warn('MQTT_ADMIN_USERNAME/PASSWORD not set: devices are not provisioned at the broker');
  const app = await buildApp({
    feed,
    brokerAdmin,
    allowPrivateWebhooks: rt.config.WEBHOOK_ALLOW_PRIVATE,
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    verifyToken: createTokenVerifier({ jwtSecret: rt.config.JWT_SECRET, jwksUrl: rt.config.JWT_JWKS_URL }),
    readiness: () => readiness(rt, parts()),
    info: () => ({ storage: rt.storage }),
  });
  await app.listen({ port: rt.config.PORT, host: rt.config.HOST });
  return {
    name: 'api',
    app,
    checks: { alert_feed: () => feed.connected },
    async stop() {
      await feed.close();
      await app.close();
      await brokerAdmin?.close();
    },
  };
}

export async function readiness(rt: Runtime, parts: Part[]): Promise<Record<string, boolean>> {
  const database = await rt.pool
    .query('SELECT 1')
    .then(() => true)
    .catch(() => false);
  const redis = await rt.redis
    .ping()
    .then((p) => p === 'PONG')
    .catch(() => false);
  const checks: Record<string, boolean> = { database, redis };
  for (const p of parts) for (const [k, f] of Object.entries(p.checks ?? {})) checks[k] = f();
  return checks;
}

export async function closeRuntime(rt: Runtime): Promise<void> {
  rt.redis.disconnect();
  await rt.pool.end();
}

/**
 * Moves new alert feed events into webhook deliveries: on each announcement from the database,
 * and every 2 s in case one was missed.
 */
function createDispatcher(rt: Runtime, queue: Queue<DeliveryJob>) {
  const hub = createFeedHub(rt.config.DATABASE_URL, rt.pool, rt.logger);
  let running: Promise<void> | null = null;
  let again = false;
  const run = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        while ((await dispatchFeed(rt.pool, queue)) > 0);
      } while (again);
    })()
      .catch((err: Error) => rt.logger.warn({ err: err.message }, 'webhook dispatch failed; retried'))
      .finally(() => {
        running = null;
      });
    return running;
  };
  hub.subscribe(() => void run());
  void hub.start();
  const timer = setInterval(() => void run(), 2000);
  return {
    async close() {
      clearInterval(timer);
      await hub.close();
      await running;
    },
  };
}

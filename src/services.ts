import { Worker, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { createPool, storageMode, type Pool } from './db.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { createDeviceReadingsQueue, createRedis, createSignaler, type DeviceReadingsJob } from './queues.js';
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
  const signaler = createSignaler(queue, (err) => rt.logger.warn({ err: err.message }, 'device signal failed; retrying'));
  const batcher = createBatcher({
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    maxBatch: rt.config.INGEST_MAX_BATCH,
    slots: rt.config.INGEST_DB_SLOTS,
    onCommitted: (devices) => signaler.signal(devices),
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

/**
 * Worker: the scheduled maintenance job (retention on plain PostgreSQL). The evaluation
 * workers of the geofence and alcohol rules attach here.
 */
export async function startWorker(rt: Runtime): Promise<Part> {
  const { Queue: BullQueue } = await import('bullmq');
  const maintenance = new BullQueue(MAINTENANCE_QUEUE, { connection: rt.redis, prefix: rt.config.QUEUE_PREFIX });
  await maintenance.upsertJobScheduler('retention', { every: 3_600_000 }, { name: 'retention' });
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async () => {
      if (rt.storage === 'timescaledb') return { mode: 'timescaledb', deleted: 0 }; // the policy drops chunks
      const deleted = await deleteExpiredReadings(rt.pool, rt.config.RETENTION_DAYS, new Date());
      rt.logger.info({ deleted, days: rt.config.RETENTION_DAYS }, 'retention: expired readings deleted');
      return { mode: 'postgresql', deleted };
    },
    { connection: rt.redis.duplicate(), prefix: rt.config.QUEUE_PREFIX },
  );
  worker.on('failed', (job, err) => rt.logger.warn({ job: job?.name, err: err.message }, 'maintenance job failed'));
  await applyRetentionPolicy(rt.pool, rt.config.RETENTION_DAYS);
  return {
    name: 'worker',
    async stop() {
      await worker.close();
      await maintenance.close();
    },
  };
}

export async function startApi(rt: Runtime, parts: () => Part[]): Promise<Part & { app: FastifyInstance }> {
  const app = await buildApp({
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
    async stop() {
      await app.close();
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

import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { createPool, storageMode, type Pool } from './db.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { createRedis } from './redis.js';

const EXTRA = Symbol('extra redis connections');

/** Shared connections of one process; each part below uses what it needs. */
export interface Runtime {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  pool: Pool;
  redis: Redis;
  /**
   * Another connection like `redis` (its Sentinels or URL) for a BullMQ worker, which blocks its
   * own; errors logged, disconnected by closeRuntime (BullMQ leaves given connections open).
   */
  redisConnection: () => Redis;
  storage: 'timescaledb' | 'postgresql';
}

export async function createRuntime(config: Config, logger: Logger, metrics: Metrics): Promise<Runtime> {
  const pool = createPool(config.DATABASE_URL, config.DB_POOL_MAX, logger);
  const redis = createRedis(config);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  const storage = await storageMode(pool);
  const extra: Redis[] = [];
  const redisConnection = () => {
    const c = redis.duplicate();
    c.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis error'));
    extra.push(c);
    return c;
  };
  return { config, logger, metrics, pool, redis, redisConnection, storage, [EXTRA]: extra } as Runtime;
}

export interface Part {
  name: string;
  /** readiness checks this part adds to /readyz */
  checks?: Record<string, () => boolean>;
  stop(): Promise<void>;
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
  for (const c of (rt as Runtime & { [EXTRA]?: Redis[] })[EXTRA] ?? []) c.disconnect();
  rt.redis.disconnect();
  await rt.pool.end();
}


/**
 * Logs the Redis errors of BullMQ queues and workers (a failover's refused connections): without
 * a listener BullMQ prints each to stderr outside the service's log.
 */
export function logRedisErrors(rt: Pick<Runtime, 'logger'>, name: string, ...emitters: Array<{ on(event: 'error', f: (err: Error) => void): unknown }>): void {
  for (const e of emitters) e.on('error', (err: Error) => rt.logger.warn({ queue: name, err: err.message }, 'queue redis error'));
}

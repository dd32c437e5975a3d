import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';

type RedisConfig = Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_MASTER_NAME' | 'REDIS_SENTINEL_PASSWORD'>;

/** `host:port,[v6]:port,…` as ioredis's sentinel list. */
export function parseSentinels(list: string): Array<{ host: string; port: number }> {
  return list.split(',').map((item) => {
    const m = /^\s*\[?([^\]\s]+?)\]?:(\d{1,5})\s*$/.exec(item);
    if (!m) throw new Error(`not host:port: ${item}`);
    return { host: m[1]!, port: Number(m[2]) };
  });
}

/**
 * The options of every Redis connection of the service (BullMQ queues and workers, the
 * dirty-device signals, delivery bookkeeping): the connection `duplicate()`s of the one made
 * here keep them. With REDIS_SENTINELS, ioredis asks the Sentinels for REDIS_MASTER_NAME's
 * address, checks the node it reaches is a master, and on a failover (the connection lost,
 * or a READONLY reply) asks again and reconnects.
 */
export function redisOptions(config: RedisConfig): RedisOptions {
  const common: RedisOptions = {
    // BullMQ needs maxRetriesPerRequest null on connections used by workers and blocking calls:
    // commands wait for the reconnection instead of failing
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: false,
    // a master demoted under us answers writes with READONLY: reconnect (to the new master) and resend
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
  if (!config.REDIS_SENTINELS) return common; // with the URL (createRedis)
  return {
    ...common,
    ...(config.REDIS_URL ? urlOptions(new URL(config.REDIS_URL)) : {}),
    sentinels: parseSentinels(config.REDIS_SENTINELS),
    name: config.REDIS_MASTER_NAME!,
    ...(config.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: config.REDIS_SENTINEL_PASSWORD } : {}),
    // No `failoverDetector` (ioredis 5's +switch-master listener): when +switch-master reached
    // the detector of a connection's previous session while it was asking the Sentinels again
    // (its master just died), it cut that attempt and ioredis ended the connection for good
    // ("Connection is closed."; test/ha/redis-failover-clients.test.ts, the fault suite's
    // redis-failover row). Without it a connection moves when its socket closes: a dead master's
    // at once, a demoted master's when the Sentinels reconfigure it (they CLIENT KILL its
    // clients), and a READONLY reply reconnects (above).
    failoverDetector: false,
    // the Sentinels' own reconnection: every 0.1 s rising to 1 s, never giving up
    sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
  };
}

/** user, password, database number and TLS of a redis:// or rediss:// URL. */
function urlOptions(u: URL): RedisOptions {
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

export function createRedis(config: RedisConfig): Redis {
  const options = redisOptions(config);
  return config.REDIS_SENTINELS ? new Redis(options) : new Redis(config.REDIS_URL!, options);
}

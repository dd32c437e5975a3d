import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createRedis } from '../../platform/redis.js';
import { migrate, storageMode } from '../../platform/db.js';
import { stackUp, type StackEnv } from '../../scripts/stack.js';
import { freePort, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { benchDeviceId } from './data.js';

/** What the bench creates, each paired with its undoing, registered as soon as it exists. */

export interface Cleanup {
  what: string;
  run: () => Promise<void> | void;
}

/**
 * stackUp() chowns the cluster directory even when PostgreSQL already runs, which races with
 * databases other clients create or drop meanwhile (chown meets a vanished file): retry.
 */
export async function stackUpWithRetry(log: (m: string) => void): Promise<StackEnv> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await stackUp(log);
    } catch (err) {
      if (attempt >= 3) throw err;
      log(`stack up failed (${(err as Error).message.split('\n')[0]}); retrying`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  storage: 'timescaledb' | 'postgresql';
}

/** A fresh database, migrated, with `devices` active devices registered; dropped by its cleanup. */
export async function createBenchDatabase(stackUrl: string, devices: number, cleanups: Cleanup[]): Promise<BenchDatabase> {
  const base = stackUrl.replace(/\/[^/]+$/, '');
  const name = `bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  admin.on('error', () => undefined); // a failure shows in the query that meets it
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  cleanups.push({
    what: `database ${name}`,
    run: async () => {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch {
        // the server that made it is gone (a failover): the new primary has it, replicated
        const again = new pg.Client({ connectionString: `${base}/postgres` });
        again.on('error', () => undefined);
        await again.connect();
        await again.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => again.end());
      } finally {
        await admin.end().catch(() => undefined);
      }
    },
  });
  const url = `${base}/${name}`;
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  // pool.end() resolves before its sockets close; the forced drop may cut one still closing.
  pool.on('error', () => undefined);
  cleanups.push({ what: 'bench pool', run: () => pool.end() });
  const client = await pool.connect();
  try {
    await migrate(client);
    const storage = await storageMode(client);
    const ids = Array.from({ length: devices }, (_, i) => benchDeviceId(i));
    await client.query(`INSERT INTO devices (id, kind, active) SELECT unnest($1::text[]), 'combined', true`, [ids]);
    return { name, url, pool, storage };
  } finally {
    client.release();
  }
}

/** A Mosquitto of the bench's own (the stack's configuration), so nothing else shares it. */
export async function startBenchBroker(cleanups: Cleanup[]): Promise<{ url: string; pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tagwatch-bench-mqtt-'));
  cleanups.push({ what: 'mosquitto directory', run: () => rmSync(dir, { recursive: true, force: true }) });
  cleanups.push({ what: 'bench mosquitto', run: () => stopMosquitto(dir) });
  const h = await startMosquitto(dir, await freePort());
  return { url: h.url, pid: Number(readFileSync(join(dir, 'mosquitto.pid'), 'utf8').trim()) };
}

/** Where the bench reaches Redis: a URL, or the Sentinels of the HA stack and the master's name. */
export type BenchRedis = string | { REDIS_SENTINELS: string; REDIS_MASTER_NAME: string };

/** A connection to `target` (through the Sentinels: it follows a failover). */
export function benchRedis(target: BenchRedis, lazyConnect = false): Redis {
  const r = typeof target === 'string' ? new Redis(target, { maxRetriesPerRequest: null, lazyConnect }) : createRedis({ ...target, REDIS_URL: undefined });
  r.on('error', () => undefined); // a failure shows in the command that meets it
  return r;
}

/** A BullMQ key prefix of the bench's own; its keys are deleted by the cleanup. */
export function benchQueuePrefix(redisTarget: BenchRedis, cleanups: Cleanup[]): string {
  const prefix = `bench${randomBytes(4).toString('hex')}`;
  cleanups.push({
    what: 'redis keys',
    run: async () => {
      const redis = typeof redisTarget === 'string' ? new Redis(redisTarget, { maxRetriesPerRequest: 2, lazyConnect: true }) : benchRedis(redisTarget);
      try {
        if (typeof redisTarget === 'string') await redis.connect();
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          if (keys.length) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  });
  return prefix;
}

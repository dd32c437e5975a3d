import pg from 'pg';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from './logger.js';

// timestamptz and int8 come back as strings from pg by default; we keep timestamps as Date
// (pg's default) and parse bigint counts explicitly where needed.
export type Pool = pg.Pool;
export type Client = pg.PoolClient | pg.Client;
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** migrations/ at the package root, seen from this file as TypeScript or compiled into dist/<folder>/ */
export const MIGRATIONS_DIR = ['../migrations', '../../migrations'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((d) => existsSync(d)) ?? fileURLToPath(new URL('../migrations', import.meta.url));

export function createPool(databaseUrl: string, max: number, logger?: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 5000 });
  // An idle client losing its server (database restarted) must not crash the process.
  pool.on('error', (err) => logger?.warn({ err: err.message }, 'postgres idle client error'));
  return pool;
}

/**
 * Applies the numbered SQL files of migrations/ (node-pg-migrate, each in a transaction).
 * Throws on failure; callers exit non-zero.
 */
export async function migrate(client: pg.Client | pg.PoolClient, logger?: Logger): Promise<void> {
  await runner({
    dbClient: client as pg.Client,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    count: Infinity,
    checkOrder: true,
    log: (msg: string) => logger?.debug({ migration: msg }, 'migrate'),
    logger: {
      debug: () => {},
      info: (m: string) => logger?.debug(m),
      warn: (m: string) => logger?.warn(m),
      error: (m: string) => logger?.error(m),
    },
  });
}

/** Which storage path the schema took: TimescaleDB hypertables or plain PostgreSQL. */
export async function storageMode(db: Queryable): Promise<'timescaledb' | 'postgresql'> {
  const r = await db.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
  return r.rowCount ? 'timescaledb' : 'postgresql';
}

/** Runs `fn` in a transaction on a pooled client: COMMIT on success, ROLLBACK on any error. */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Moves a device's evaluation watermark forward (never back), in `table` (device_id, watermark). */
export async function advanceWatermark(db: Queryable, table: 'geofence_progress' | 'alcohol_progress', deviceId: string, ts: Date): Promise<void> {
  await db.query(
    `INSERT INTO ${table} (device_id, watermark) VALUES ($1, $2)
     ON CONFLICT (device_id) DO UPDATE SET watermark = greatest(${table}.watermark, excluded.watermark), updated_at = now()`,
    [deviceId, ts],
  );
}

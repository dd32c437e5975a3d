import pg from 'pg';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from './logger.js';

// timestamptz and int8 come back as strings from pg by default; we keep timestamps as Date
// (pg's default) and parse bigint counts explicitly where needed.
export type Pool = pg.Pool;
export type Client = pg.PoolClient | pg.Client;
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

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

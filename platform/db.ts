import pg from 'pg';
import { existsSync, readdirSync } from 'node:fs';
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
  // Nor one checked out between two statements (a transaction's client when a failover cuts its
  // session): pg-pool listens only to idle clients. The statement after fails; pg-pool drops the
  // dead client when it is released.
  pool.on('connect', (client) => client.on('error', (err) => logger?.warn({ err: err.message }, 'postgres connection lost while in use')));
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

/** Names of the migrations in migrations/ that the database has not run (in order). */
export async function pendingMigrations(db: Queryable): Promise<string[]> {
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, '')).sort();
  const table = await db.query(`SELECT to_regclass('public.pgmigrations') IS NOT NULL AS present`);
  if (!table.rows[0].present) return files;
  const ran = new Set((await db.query<{ name: string }>(`SELECT name FROM pgmigrations`)).rows.map((r) => r.name));
  return files.filter((f) => !ran.has(f));
}

/** Whether the connected role may create objects in schema public (an owner or single-role setup). */
export async function canCreateInSchema(db: Queryable): Promise<boolean> {
  const r = await db.query(`SELECT has_schema_privilege(current_user, 'public', 'CREATE') AS ok`);
  return r.rows[0].ok === true;
}

/**
 * The ways the connected role could rewrite history in the audit log (owner, TRUNCATE, UPDATE,
 * DELETE): empty for the runtime role of a two-role deployment.
 */
export async function auditLogWeaknesses(db: Queryable): Promise<string[]> {
  const r = await db.query<{ owner: boolean; truncate: boolean; update: boolean; delete: boolean }>(
    `SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS owner,
            has_table_privilege(current_user, c.oid, 'TRUNCATE') AS truncate,
            has_table_privilege(current_user, c.oid, 'UPDATE') AS update,
            has_table_privilege(current_user, c.oid, 'DELETE') AS delete
       FROM pg_class c WHERE c.oid = to_regclass('public.audit_log')`,
  );
  const row = r.rows[0];
  return row ? (['owner', 'truncate', 'update', 'delete'] as const).filter((k) => row[k]) : [];
}

/** Which storage path the schema took: TimescaleDB hypertables or plain PostgreSQL. */
export async function storageMode(db: Queryable): Promise<'timescaledb' | 'postgresql'> {
  const r = await db.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
  return r.rowCount ? 'timescaledb' : 'postgresql';
}

declare const inTransaction: unique symbol;
/**
 * A pooled client inside an open transaction. Only `withTransaction` hands one out (the brand is
 * not exported), so a write of several statements that takes a TxClient cannot be given a pool
 * by mistake: it is all-or-nothing by its type.
 */
export type TxClient = pg.PoolClient & { readonly [inTransaction]: true };

/**
 * Thrown inside `withTransaction` to roll back and return `value` from it: an expected outcome
 * (a conflict, a refusal) that must leave nothing written, without being an error.
 */
export class Rollback<T> {
  constructor(readonly value: T) {}
}

/** Rolls the current transaction back and makes `withTransaction` return `value`. */
export function rollbackWith<T>(value: T): never {
  throw new Rollback(value);
}

/** Runs `fn` in a transaction on a pooled client: COMMIT on success, ROLLBACK on any error or `rollbackWith`. */
export async function withTransaction<T>(pool: pg.Pool, fn: (tx: TxClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client as TxClient);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (err instanceof Rollback) return err.value as T;
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Transaction-scoped advisory locks on `namespace || key` for each key, taken in one order (by
 * hash) so two transactions locking overlapping sets never deadlock. The one spelling of the
 * service's locks: namespaces end in a colon (`zone-state:`, `health:`, `alcohol-device:`).
 */
export async function lockKeys(tx: TxClient, namespace: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await tx.query(`SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext($1 || k) AS h FROM unnest($2::text[]) AS k ORDER BY h) AS x`, [namespace, keys]);
}

/** Moves a device's evaluation watermark forward (never back), in `table` (device_id, watermark). */
export async function advanceWatermark(db: Queryable, table: 'geofence_progress' | 'alcohol_progress', deviceId: string, ts: Date): Promise<void> {
  await db.query(
    `INSERT INTO ${table} (device_id, watermark) VALUES ($1, $2)
     ON CONFLICT (device_id) DO UPDATE SET watermark = greatest(${table}.watermark, excluded.watermark), updated_at = now()`,
    [deviceId, ts],
  );
}

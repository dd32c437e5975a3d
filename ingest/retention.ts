import type { Queryable } from '../platform/db.js';
import { storageMode } from '../platform/db.js';

/**
 * Raw-reading retention (contract §1, default 6 years). TimescaleDB: a retention policy drops
 * whole chunks. Plain PostgreSQL: `deleteExpiredReadings`, run by the worker's scheduled
 * maintenance job. Both keep exactly the readings younger than `days` (to chunk granularity on
 * TimescaleDB, which may keep up to one chunk interval, 7 days, longer).
 */
export async function applyRetentionPolicy(db: Queryable, days: number): Promise<'timescaledb' | 'postgresql'> {
  const mode = await storageMode(db);
  if (mode === 'timescaledb') {
    await db.query(`SELECT remove_retention_policy('readings', if_exists => true)`);
    await db.query(`SELECT add_retention_policy('readings', make_interval(days => $1::int))`, [days]);
  }
  return mode;
}

/** Deletes readings older than `days` before `now`; returns how many. */
export async function deleteExpiredReadings(db: Queryable, days: number, now: Date): Promise<number> {
  const r = await db.query(`DELETE FROM readings WHERE ts < $1::timestamptz - make_interval(days => $2::int)`, [now, days]);
  return r.rowCount ?? 0;
}

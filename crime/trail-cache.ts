import type { PoolClient } from 'pg';
import type { Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { indexTrails, type TrailIndex, type Trails } from './match.js';
import { crimeParamsVersion, DEFAULT_CRIME_PARAMS, type CrimeParams } from './rules.js';
import { loadTrailsInTransaction } from './trails.repo.js';

/**
 * The crime worker's resident trails: every subject's fixes of the last `hours` hours (and a few
 * hours ahead, for windows ending now), loaded in one snapshot S with their per-hour R-trees, so a
 * batch whose windows lie inside skips the load and the index build (most of a run's time).
 *
 * A window is served from memory only when the database still holds, for it, exactly what S held:
 * - no GPS reading was stored after S in an hour the window touches: every `gps_hour_log` row of
 *   those hours has a transaction id visible in S (a reading's transaction writes that row, so a
 *   late reading, or one committed while S was being read, is seen);
 * - no reading was deleted after S (`readings_delete_epoch` visible in S);
 * - the GPS fittings overlapping the window are the same rows;
 * - the window is well inside the retention period (TimescaleDB drops chunks without triggers).
 * The check runs in the run's own snapshot, so a reading either was in S or makes the check fail:
 * it is never missed. Otherwise the run loads from the database as before and the cache is marked
 * stale (reloaded by the next maintenance tick). Decisions are the same either way: the trails
 * restricted to the window are the rows the plain loader returns.
 */

const H = 3_600_000;
/** ms: the cache reaches this far past the hour of its load (windows end at most now + G) */
const AHEAD_MS = 3 * H;
/** ms: a cache is reloaded at least this often, and not more often than STALE_RELOAD_MS when stale */
const RELOAD_MS = H;
const STALE_RELOAD_MS = 5 * 60_000;

interface State {
  /** ms: covered device-time range [from, to] */
  from: number;
  to: number;
  /** pg_snapshot text of the load */
  snapshot: string;
  /** the GPS fittings overlapping [from, to] at the load */
  fittings: Fitting[];
  trails: Trails;
  indexes: Map<string, TrailIndex>;
  loadedAt: number;
}

interface Fitting {
  key: string;
  start: number;
  end: number;
}

export interface TrailCacheOptions {
  /** hours of device time held before now */
  hours: number;
  /** readings older than this many days may be dropped without a trigger (TimescaleDB) */
  retentionDays: number;
  now?: () => number;
  logger?: Logger;
}

export class TrailCache {
  private state: State | null = null;
  private stale = false;
  private loading: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: TrailCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The covered range (ms) and the number of fixes held, or null before the first load. */
  get covered(): { from: number; to: number; fixes: number } | null {
    return this.state ? { from: this.state.from, to: this.state.to, fixes: this.state.trails.ts.length } : null;
  }

  /** Whether the next maintenance tick should reload: never loaded, older than an hour, or stale for five minutes. */
  due(): boolean {
    if (!this.state) return true;
    const age = this.now() - this.state.loadedAt;
    return age >= RELOAD_MS || (this.stale && age >= STALE_RELOAD_MS);
  }

  /** Loads the whole period afresh (one load at a time; a second call waits for the first). */
  refresh(pool: Pool, params: CrimeParams = DEFAULT_CRIME_PARAMS): Promise<void> {
    this.loading ??= this.load(pool, params).finally(() => (this.loading = null));
    return this.loading;
  }

  private async load(pool: Pool, params: CrimeParams): Promise<void> {
    const t0 = this.now();
    const from = Math.floor((t0 - this.opts.hours * H) / H) * H;
    const to = Math.floor(t0 / H) * H + AHEAD_MS;
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const snapshot = (await client.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)).rows[0]!.s;
      const fittings = await fittingsIn(client, from, to);
      const { trails } = await loadTrailsInTransaction(client, from, to);
      await client.query('COMMIT');
      const indexes = new Map([[crimeParamsVersion(params), indexTrails(trails, params)]]);
      this.state = { from, to, snapshot, fittings, trails, indexes, loadedAt: t0 };
      this.stale = false;
      this.opts.logger?.info({ fixes: trails.ts.length, from: new Date(from).toISOString(), to: new Date(to).toISOString(), ms: this.now() - t0 }, 'crime trail cache loaded');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * The index and the latest receipt time of the fixes in [from, to] (ms), when the cache holds
   * exactly what the database holds for that window now (see above); null otherwise.
   */
  async serve(pool: Pool, from: number, to: number, params: CrimeParams): Promise<{ ix: TrailIndex; receivedMax: number | null } | null> {
    const s = this.state;
    if (!s || from < s.from || to > s.to) return null;
    // a few hours inside the retention period: chunks dropped by TimescaleDB fire no trigger
    if (from < this.now() - this.opts.retentionDays * 24 * H + 2 * H) return null;
    if (!(await unchanged(pool, s, from, to))) {
      this.stale = true;
      return null;
    }
    const version = crimeParamsVersion(params);
    let ix = s.indexes.get(version);
    if (!ix) s.indexes.set(version, (ix = indexTrails(s.trails, params)));
    return { ix, receivedMax: receivedMaxIn(s.trails, from, to) };
  }
}

/** Whether nothing the window [from, to] depends on changed since the cache's snapshot. */
async function unchanged(pool: Pool, s: State, from: number, to: number): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const r = await client.query<{ hours: number; deleted: boolean }>(
      `SELECT (SELECT count(*)::int FROM gps_hour_log WHERE hour >= $1 AND hour <= $2 AND NOT pg_visible_in_snapshot(xid, $3::pg_snapshot)) AS hours,
              (SELECT NOT pg_visible_in_snapshot(xid, $3::pg_snapshot) FROM readings_delete_epoch) AS deleted`,
      [new Date(Math.floor(from / H) * H), new Date(to), s.snapshot],
    );
    if (r.rows[0]!.hours > 0 || r.rows[0]!.deleted !== false) return false;
    const now = (await fittingsIn(client, from, to)).map((f) => clipped(f, from, to));
    const then = s.fittings.filter((f) => f.start <= to && f.end > from).map((f) => clipped(f, from, to));
    return now.length === then.length && now.every((k, i) => k === then[i]);
  } finally {
    await client.query('COMMIT').catch(() => undefined);
    client.release();
  }
}

/** A fitting as the loader uses it for [from, to]: fixes at or after max(start, from), before its end, at or before `to`. */
function clipped(f: Fitting, from: number, to: number): string {
  return `${f.key}\u0000${Math.max(f.start, from)}\u0000${f.end > to ? 'open' : f.end}`;
}

/** GPS fittings overlapping [from, to], in a fixed order, with the same predicate as the loader. */
async function fittingsIn(client: PoolClient, from: number, to: number): Promise<Fitting[]> {
  const r = await client.query<{ subject_id: string; device_id: string; kind: string; start_at: Date; end_at: Date | null }>(
    `SELECT a.subject_id, a.device_id, d.kind, a.start_at, a.end_at
       FROM assignments a JOIN devices d ON d.id = a.device_id
      WHERE d.kind IN ('gps', 'combined') AND a.start_at <= $2 AND (a.end_at IS NULL OR a.end_at > $1)
      ORDER BY a.subject_id, a.device_id, a.start_at`,
    [new Date(from), new Date(to)],
  );
  return r.rows.map((x) => {
    const start = x.start_at.getTime();
    const end = x.end_at ? x.end_at.getTime() : Infinity;
    return { key: `${x.subject_id}\u0000${x.device_id}\u0000${x.kind}`, start, end };
  });
}

/** ms: the latest receipt time of the fixes with device time in [from, to], or null with none. */
function receivedMaxIn(t: Trails, from: number, to: number): number | null {
  let max: number | null = null;
  const rx = t.received!;
  for (let i = 0; i < t.ts.length; i++) {
    const ts = t.ts[i]!;
    if (ts >= from && ts <= to && (max === null || rx[i]! > max)) max = rx[i]!;
  }
  return max;
}

/**
 * Keeps the change log small: hours before `before` (ms, the retention horizon) go; the rows of
 * hours before `foldBefore` (ms) that this statement sees (all committed) become one row per hour
 * carrying this transaction's id. No snapshot taken before this commit sees that id, so a cache
 * loaded before finds those hours changed (stale, never wrong) and one loaded after finds them as
 * they were; rows of transactions still running are not seen and stay. The worker folds only
 * hours older than its cache reaches, so folding never makes its cache stale. Returns the rows
 * removed.
 */
export async function compactGpsHourLog(pool: Pool, before: number, foldBefore: number): Promise<number> {
  const r = await pool.query<{ n: number }>(
    `WITH gone AS (DELETE FROM gps_hour_log WHERE hour < $2 RETURNING hour),
          kept AS (INSERT INTO gps_hour_log (hour, xid) SELECT DISTINCT hour, pg_current_xact_id() FROM gone WHERE hour >= $1 ON CONFLICT DO NOTHING)
     SELECT count(*)::int AS n FROM gone`,
    [new Date(before), new Date(foldBefore)],
  );
  return r.rows[0]!.n;
}

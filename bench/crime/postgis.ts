import type pg from 'pg';
import { ensurePostgis } from '../geofence/postgis.js';

/**
 * bench:crime side by side: the same question asked of PostGIS over the same fixes, in the bench
 * database: a table of (subject, ts, geography, accuracy) with a GiST index on (geography, ts)
 * (btree_gist for the time), and one statement per batch: the fixes in W whose error circle
 * reaches R of the crime (ST_DWithin on the sphere, prefiltered by the largest accuracy + R so the
 * index applies, then d − a ≤ R), placed when some fix has d + a ≤ R. PostGIS does not do the
 * gap rule (a reachable pair): only the fix-based part is compared.
 */

export async function buildGis(pool: pg.Pool, admin: pg.Client, log: (m: string) => void): Promise<{ rows: number; buildS: number; indexS: number }> {
  await ensurePostgis(admin, log);
  await pool.query(`CREATE EXTENSION IF NOT EXISTS postgis`);
  await pool.query(`CREATE EXTENSION IF NOT EXISTS btree_gist`);
  await pool.query(`DROP TABLE IF EXISTS gis_fixes`);
  let t = performance.now();
  const r = await pool.query(
    `CREATE TABLE gis_fixes AS
       SELECT a.subject_id, r.ts, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326)::geography AS g, r.accuracy_m AS a
         FROM readings r JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND (a.end_at IS NULL OR r.ts < a.end_at)
        WHERE r.stream = 'gps'`,
  );
  const buildS = (performance.now() - t) / 1000;
  t = performance.now();
  await pool.query(`SET maintenance_work_mem = '512MB'`);
  await pool.query(`CREATE INDEX gis_fixes_g_ts ON gis_fixes USING gist (g, ts)`);
  await pool.query(`ANALYZE gis_fixes`);
  return { rows: r.rowCount ?? 0, buildS, indexS: (performance.now() - t) / 1000 };
}

/** (crime id, subject) → placed | possible, for one batch's crimes; and the seconds the statement took. */
export async function gisMatches(pool: pg.Pool, batchId: string, radiusM: number): Promise<{ seconds: number; pairs: Map<string, 'placed' | 'possible'> }> {
  const maxA = Number((await pool.query<{ m: number }>(`SELECT max(a) AS m FROM gis_fixes`)).rows[0]!.m ?? 0);
  const t = performance.now();
  const r = await pool.query<{ crime_id: string; subject_id: string; placed: boolean }>(
    `WITH c AS (SELECT id, from_at, to_at, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS g FROM crimes WHERE batch_id = $1)
     SELECT c.id::text AS crime_id, f.subject_id, bool_or(ST_Distance(f.g, c.g, false) + f.a <= $2) AS placed
       FROM c JOIN gis_fixes f
         ON ST_DWithin(f.g, c.g, $3, false) AND f.ts >= c.from_at AND f.ts <= c.to_at AND ST_Distance(f.g, c.g, false) - f.a <= $2
      GROUP BY 1, 2`,
    [batchId, radiusM, maxA + radiusM],
  );
  const seconds = (performance.now() - t) / 1000;
  return { seconds, pairs: new Map(r.rows.map((x) => [`${x.crime_id}/${x.subject_id}`, x.placed ? 'placed' : 'possible'])) };
}

/** Our stored results of a run, fix-based part only: (crime, subject) → placed | possible (a reachable pair alone left out). */
export async function ourFixMatches(pool: pg.Pool, runId: string): Promise<{ pairs: Map<string, 'placed' | 'possible'>; reachableOnly: number }> {
  const r = await pool.query<{ crime_id: string; subject_id: string; category: 'placed' | 'possible'; reason: string }>(
    `SELECT crime_id::text, subject_id, category, deciding->0->>'reason' AS reason FROM crime_matches WHERE run_id = $1`,
    [runId],
  );
  const pairs = new Map<string, 'placed' | 'possible'>();
  let reachableOnly = 0;
  for (const x of r.rows) {
    if (x.reason === 'reachable') reachableOnly++;
    else pairs.set(`${x.crime_id}/${x.subject_id}`, x.category);
  }
  return { pairs, reachableOnly };
}

export function compare(a: Map<string, string>, b: Map<string, string>): { same: number; onlyA: string[]; onlyB: string[]; differ: string[] } {
  let same = 0;
  const onlyA: string[] = [];
  const differ: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) onlyA.push(k);
    else if (w !== v) differ.push(`${k}: ${v} vs ${w}`);
    else same++;
  }
  const onlyB = [...b.keys()].filter((k) => !a.has(k));
  return { same, onlyA, onlyB, differ };
}

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Fix } from '../../geofence/breach.js';
import type { TownZone } from './town.js';
import type { Cleanup } from '../common/setup.js';

/**
 * Phase (c) of bench:geofence: the same zones and fixes in PostGIS, in a throwaway database of
 * the stack's PostgreSQL, with GiST indexes. Two queries, both run entirely in the server
 * (only counts come back, the best case for the database):
 *
 * - `circle`: the contract's three-way test with the error circle, like classifyFix: candidate
 *   zones by `ST_DWithin(zone, fix, accuracy_m)` on geography (sphere, like turf), then inside
 *   when `ST_Covers(zone, fix)` and the boundary is farther than the accuracy, else uncertain.
 * - `contains`: plain point-in-polygon `ST_Contains(zone, fix)` on geometry (what the issue names;
 *   it ignores the error circle, so it answers less).
 */

export interface PostgisResult {
  version: string;
  circle: { seconds: number; fixes: number; inside: number; uncertain: number };
  contains: { seconds: number; fixes: number; inside: number };
  /** per-fix counts of inside and uncertain zones from the circle query, for agreement checks */
  perFix: Array<{ inside: number; uncertain: number }>;
}

const PACKAGE = 'postgresql-15-postgis-3';

/** Installs Debian's PostGIS for PostgreSQL 15 when the server does not offer the extension. */
export async function ensurePostgis(admin: pg.Client, log: (m: string) => void): Promise<void> {
  const r = await admin.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'`);
  if (r.rowCount) return;
  log(`postgis not available: installing ${PACKAGE} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', PACKAGE], { stdio: 'inherit', env });
}

/** A fresh database with the postgis extension; dropped by its cleanup. */
export async function createPostgisDatabase(stackUrl: string, cleanups: Cleanup[], log: (m: string) => void): Promise<pg.Pool> {
  const base = stackUrl.replace(/\/[^/]+$/, '');
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  admin.on('error', () => undefined);
  await admin.connect();
  await ensurePostgis(admin, log);
  const name = `bench_gis_${randomBytes(5).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  cleanups.push({
    what: `database ${name}`,
    run: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  });
  const pool = new pg.Pool({ connectionString: `${base}/${name}`, max: 2 });
  pool.on('error', () => undefined);
  cleanups.push({ what: 'postgis pool', run: () => pool.end() });
  await pool.query('CREATE EXTENSION postgis');
  return pool;
}

async function insertChunks<T>(pool: pg.Pool, rows: T[], size: number, insert: (chunk: T[], offset: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await insert(rows.slice(i, i + size), i);
}

/** Loads zones and fixes, builds the GiST indexes and statistics (not timed). */
export async function loadPostgis(pool: pg.Pool, zones: TownZone[], fixes: Fix[]): Promise<void> {
  await pool.query(`CREATE TABLE zones (id int PRIMARY KEY, geom geometry(Polygon, 4326) NOT NULL,
    geog geography(Polygon, 4326) GENERATED ALWAYS AS (geom::geography) STORED,
    boundary geography GENERATED ALWAYS AS (ST_Boundary(geom)::geography) STORED)`);
  await pool.query(`CREATE TABLE fixes (id int PRIMARY KEY, pt geometry(Point, 4326) NOT NULL,
    geog geography(Point, 4326) GENERATED ALWAYS AS (pt::geography) STORED, accuracy_m float8 NOT NULL)`);
  await insertChunks(pool, zones, 500, (chunk, off) =>
    pool.query(`INSERT INTO zones (id, geom) SELECT o + $1 - 1, ST_SetSRID(ST_GeomFromGeoJSON(g), 4326) FROM unnest($2::text[]) WITH ORDINALITY AS t(g, o)`, [
      off,
      chunk.map((z) => JSON.stringify({ type: 'Polygon', coordinates: [z.ring] })),
    ]),
  );
  await insertChunks(pool, fixes, 5000, (chunk, off) =>
    pool.query(
      `INSERT INTO fixes (id, pt, accuracy_m) SELECT o + $1 - 1, ST_SetSRID(ST_MakePoint(x, y), 4326), a
         FROM unnest($2::float8[], $3::float8[], $4::float8[]) WITH ORDINALITY AS t(x, y, a, o)`,
      [off, chunk.map((f) => f.lon), chunk.map((f) => f.lat), chunk.map((f) => f.accuracy_m)],
    ),
  );
  await pool.query('CREATE INDEX zones_geog_gist ON zones USING gist (geog)');
  await pool.query('CREATE INDEX zones_geom_gist ON zones USING gist (geom)');
  await pool.query('VACUUM ANALYZE zones');
  await pool.query('VACUUM ANALYZE fixes');
}

const CIRCLE = `
  SELECT f.id, count(c.inside) FILTER (WHERE c.inside)::int AS inside, count(c.inside) FILTER (WHERE NOT c.inside)::int AS uncertain
    FROM fixes f
    LEFT JOIN LATERAL (
      SELECT ST_Covers(z.geog, f.geog) AND NOT ST_DWithin(z.boundary, f.geog, f.accuracy_m, false) AS inside
        FROM zones z WHERE ST_DWithin(z.geog, f.geog, f.accuracy_m, false)
    ) c ON true
   GROUP BY f.id`;
const CONTAINS = `SELECT count(*)::int AS inside FROM fixes f JOIN zones z ON ST_Contains(z.geom, f.pt)`;

/** Runs each query once to warm the caches, then times it once more. */
export async function runPostgis(pool: pg.Pool, fixes: number): Promise<PostgisResult> {
  const version = (await pool.query<{ v: string }>('SELECT postgis_lib_version() AS v')).rows[0]!.v;
  const timed = async <R extends pg.QueryResultRow>(sql: string) => {
    await pool.query(sql);
    const t0 = performance.now();
    const r = await pool.query<R>(sql);
    return { rows: r.rows, seconds: (performance.now() - t0) / 1000 };
  };
  // the per-fix rows are aggregated in the client only after the clock stops
  const circle = await timed<{ id: number; inside: number; uncertain: number }>(CIRCLE);
  const perFix = new Array<{ inside: number; uncertain: number }>(fixes);
  let inside = 0;
  let uncertain = 0;
  for (const r of circle.rows) {
    perFix[r.id] = { inside: r.inside, uncertain: r.uncertain };
    inside += r.inside;
    uncertain += r.uncertain;
  }
  const contains = await timed<{ inside: number }>(CONTAINS);
  return {
    version,
    circle: { seconds: circle.seconds, fixes, inside, uncertain },
    contains: { seconds: contains.seconds, fixes, inside: contains.rows[0]!.inside },
    perFix,
  };
}

/** EXPLAIN ANALYZE of the circle query's plan, first lines (to show the GiST index is used). */
export async function explainCircle(pool: pg.Pool): Promise<string[]> {
  const r = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${CIRCLE}`);
  return r.rows.map((x) => x['QUERY PLAN']);
}

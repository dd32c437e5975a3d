import type { Pool, Queryable } from '../platform/db.js';
import type { PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { CrimeFix } from './rules.js';
import type { Trails } from './match.js';
import { TrailBuilder } from './trails.js';

/**
 * GPS fixes for crime matching: only fixes inside a fitting of a GPS-capable device (`gps` or
 * `combined`), attributed to the subject fitted, all its devices merged in device-time order
 * (ties by device id). Reads by (device, stream, ts) — the readings' primary key — so the cost
 * follows the window and the devices fitted, not the table's size.
 */

const FITTED_SQL = `
  SELECT a.subject_id, a.device_id, greatest(a.start_at, $1::timestamptz) AS lo, coalesce(a.end_at, 'infinity') AS hi
    FROM assignments a JOIN devices d ON d.id = a.device_id
   WHERE d.kind IN ('gps', 'combined') AND a.start_at <= $2 AND (a.end_at IS NULL OR a.end_at > $1)`;

/**
 * Fixes of one subject in [from, to] (ms), in device-time order, and the latest receipt time
 * among them (ms, or null with none).
 */
export async function subjectFixes(db: Queryable, subjectId: string, from: number, to: number): Promise<{ fixes: CrimeFix[]; receivedMax: number | null }> {
  const r = await db.query<{ device_id: string; ts: Date; lat: number; lon: number; accuracy_m: number; received_at: Date }>(
    `WITH f AS (${FITTED_SQL} AND a.subject_id = $3)
     SELECT r.device_id, r.ts, r.lat, r.lon, r.accuracy_m, r.received_at
       FROM f JOIN readings r ON r.device_id = f.device_id AND r.stream = 'gps' AND r.ts >= f.lo AND r.ts < f.hi AND r.ts <= $2
      ORDER BY r.ts, r.device_id`,
    [new Date(from), new Date(to), subjectId],
  );
  let receivedMax: number | null = null;
  const fixes = r.rows.map((x) => {
    receivedMax = Math.max(receivedMax ?? 0, x.received_at.getTime());
    return { ts: x.ts.getTime(), lat: x.lat, lon: x.lon, accuracy_m: x.accuracy_m, device_id: x.device_id };
  });
  return { fixes, receivedMax };
}

/**
 * Every subject's fixes in [from, to] (ms, both ends included) as columnar trails, read in one
 * snapshot (a REPEATABLE READ transaction). `db` is a pool (a connection is taken for the load)
 * or a connected client outside a transaction.
 */
export async function loadTrails(db: Pool | PoolClient, from: number, to: number, devicesPerQuery = 500): Promise<{ trails: Trails; receivedMax: number | null }> {
  const client = 'release' in db ? db : await (db as Pool).connect();
  const own = client !== db;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const out = await loadTrailsInTransaction(client, from, to, devicesPerQuery);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    if (own) (client as PoolClient).release();
  }
}

/**
 * `loadTrails` inside the caller's transaction. The fittings go into a temporary table in pages
 * of devices (a subject never split between pages); each page's fixes come out with one binary
 * COPY (fixed-width numbers only: no text to parse, no object per row), ordered by subject, time
 * and device, straight into typed arrays, with each fix's receipt time (`trails.received`, epoch
 * ms). Also the latest receipt time used.
 */
export async function loadTrailsInTransaction(client: PoolClient, from: number, to: number, devicesPerQuery = 500): Promise<{ trails: Trails; receivedMax: number | null }> {
  const fitted = (await client.query<{ subject_id: string; device_id: string; lo: Date; hi: Date }>(`${FITTED_SQL} ORDER BY a.subject_id, a.start_at`, [new Date(from), new Date(to)])).rows;
  await client.query(`CREATE TEMP TABLE crime_fitted (s int, d int, device_id text, lo timestamptz, hi timestamptz) ON COMMIT DROP`);
  // per device through the primary key (device, stream, ts): the cost follows the devices and the
  // window, never the table (a hash join over a month of readings would scan all of it)
  await client.query(`SET LOCAL enable_hashjoin = off`);
  await client.query(`SET LOCAL enable_mergejoin = off`);
  await client.query(`SET LOCAL enable_seqscan = off`);
  const b = new TrailBuilder(1 << 16);
  const deviceIx = new Map<string, number>();
  const devices: string[] = [];
  let receivedMax: number | null = null;
  for (let i = 0; i < fitted.length; ) {
    let j = Math.min(fitted.length, i + devicesPerQuery);
    while (j < fitted.length && fitted[j]!.subject_id === fitted[j - 1]!.subject_id) j++;
    const page = fitted.slice(i, j);
    i = j;
    const subjects = [...new Set(page.map((p) => p.subject_id))];
    const sIx = new Map(subjects.map((s, k) => [s, k]));
    const dIx = page.map((p) => {
      let d = deviceIx.get(p.device_id);
      if (d === undefined) deviceIx.set(p.device_id, (d = devices.push(p.device_id) - 1));
      return d;
    });
    await client.query('TRUNCATE crime_fitted');
    await client.query(`INSERT INTO crime_fitted SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[])`, [
      page.map((p) => sIx.get(p.subject_id)!),
      dIx,
      page.map((p) => p.device_id),
      page.map((p) => p.lo),
      page.map((p) => p.hi),
    ]);
    await client.query('ANALYZE crime_fitted');
    const bytes = await copyOut(
      client,
      `COPY (SELECT f.s, f.d, (extract(epoch FROM r.ts) * 1000)::float8, r.lat, r.lon, r.accuracy_m, (extract(epoch FROM r.received_at) * 1000)::float8
               FROM crime_fitted f JOIN readings r ON r.device_id = f.device_id AND r.stream = 'gps' AND r.ts >= f.lo AND r.ts < f.hi AND r.ts <= '${new Date(to).toISOString()}'
              ORDER BY f.s, r.ts, r.device_id) TO STDOUT (FORMAT binary)`,
    );
    readBinaryRows(bytes, (s, d, t, lat, lon, a, rx) => {
      b.push(subjects[s]!, devices[d]!, t, lat, lon, a, rx);
      if (receivedMax === null || rx > receivedMax) receivedMax = rx;
    });
  }
  await client.query('DROP TABLE crime_fitted');
  return { trails: b.finish(), receivedMax };
}

/** Runs a COPY … TO STDOUT and returns its bytes. */
async function copyOut(client: PoolClient, sql: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = client.query(copyTo(sql));
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Rows of a binary COPY of (int4, int4, float8 × 5), in order. Format: an 11-byte signature,
 * flags (int32), header extension length (int32) and extension; then per row an int16 field
 * count (−1 ends) and per field an int32 length and the big-endian value.
 */
export function readBinaryRows(buf: Buffer, row: (s: number, d: number, t: number, lat: number, lon: number, a: number, rx: number) => void): number {
  let o = 11 + 4;
  o += 4 + buf.readInt32BE(o);
  let n = 0;
  const f8: number[] = [0, 0, 0, 0, 0];
  while (o < buf.length) {
    const fields = buf.readInt16BE(o);
    o += 2;
    if (fields === -1) break;
    if (fields !== 7) throw new Error(`binary COPY: ${fields} fields, expected 7`);
    if (buf.readInt32BE(o) !== 4) throw new Error('binary COPY: s is not int4');
    const s = buf.readInt32BE(o + 4);
    const d = buf.readInt32BE(o + 12);
    o += 16;
    for (let k = 0; k < 5; k++) {
      const len = buf.readInt32BE(o);
      if (len !== 8) throw new Error(`binary COPY: field ${k + 2} of row ${n + 1} is ${len === -1 ? 'null' : `${len} bytes`}`);
      f8[k] = buf.readDoubleBE(o + 4);
      o += 12;
    }
    row(s, d, f8[0]!, f8[1]!, f8[2]!, f8[3]!, f8[4]!);
    n++;
  }
  return n;
}

import type { Queryable } from '../platform/db.js';
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
  SELECT a.subject_id, a.device_id, greatest(a.start_at, $1::timestamptz) AS lo, least(coalesce(a.end_at, 'infinity'), $2::timestamptz) AS hi
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
 * Every subject's fixes in [from, to] (ms) as columnar trails, read in pages of devices (one
 * query each, a subject never split between pages) to bound the rows in flight; rows arrive as
 * arrays and go straight into typed arrays. Also the latest receipt time used.
 */
export async function loadTrails(db: Queryable, from: number, to: number, devicesPerQuery = 500): Promise<{ trails: Trails; receivedMax: number | null }> {
  const fitted = (await db.query<{ subject_id: string; device_id: string; lo: Date; hi: Date }>(`${FITTED_SQL} ORDER BY a.subject_id, a.start_at`, [new Date(from), new Date(to)])).rows;
  const b = new TrailBuilder(1 << 16);
  let receivedMax: number | null = null;
  for (let i = 0; i < fitted.length; ) {
    let j = Math.min(fitted.length, i + devicesPerQuery);
    while (j < fitted.length && fitted[j]!.subject_id === fitted[j - 1]!.subject_id) j++;
    const page = fitted.slice(i, j);
    i = j;
    // epoch ms as float8, rows as arrays: 17 million rows parse without an object each
    const r = await db.query<[string, string, number, number, number, number, number]>({
      text: `SELECT f.subject_id, r.device_id, (extract(epoch FROM r.ts) * 1000)::float8, r.lat, r.lon, r.accuracy_m, (extract(epoch FROM r.received_at) * 1000)::float8
               FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS f(subject_id, device_id, lo, hi)
               JOIN readings r ON r.device_id = f.device_id AND r.stream = 'gps' AND r.ts >= f.lo AND r.ts < f.hi AND r.ts <= $5
              ORDER BY f.subject_id, r.ts, r.device_id`,
      values: [page.map((p) => p.subject_id), page.map((p) => p.device_id), page.map((p) => p.lo), page.map((p) => p.hi), new Date(to)],
      rowMode: 'array',
    });
    for (const x of r.rows) {
      b.push(x[0], x[1], x[2], x[3], x[4], x[5]);
      if (receivedMax === null || x[6] > receivedMax) receivedMax = x[6];
    }
  }
  return { trails: b.finish(), receivedMax };
}

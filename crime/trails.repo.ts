import type { Queryable } from '../platform/db.js';
import type { CrimeFix } from './rules.js';
import { trailsFrom, type Trails } from './match.js';

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
 * query each) to bound the rows in flight. Also the latest receipt time used.
 */
export async function loadTrails(db: Queryable, from: number, to: number, devicesPerQuery = 500): Promise<{ trails: Trails; receivedMax: number | null }> {
  const fitted = (await db.query<{ subject_id: string; device_id: string; lo: Date; hi: Date }>(FITTED_SQL, [new Date(from), new Date(to)])).rows;
  const bySubject = new Map<string, CrimeFix[]>();
  let receivedMax: number | null = null;
  for (let i = 0; i < fitted.length; i += devicesPerQuery) {
    const page = fitted.slice(i, i + devicesPerQuery);
    // text-free rows: epoch ms as float8, so 17 million rows parse quickly
    const r = await db.query<{ s: string; d: string; t: number; la: number; lo: number; a: number; rx: number }>({
      text: `SELECT f.subject_id AS s, r.device_id AS d, extract(epoch FROM r.ts) * 1000 AS t, r.lat AS la, r.lon AS lo, r.accuracy_m AS a,
                    extract(epoch FROM r.received_at) * 1000 AS rx
               FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS f(subject_id, device_id, lo, hi)
               JOIN readings r ON r.device_id = f.device_id AND r.stream = 'gps' AND r.ts >= f.lo AND r.ts < f.hi AND r.ts <= $5`,
      values: [page.map((p) => p.subject_id), page.map((p) => p.device_id), page.map((p) => p.lo), page.map((p) => p.hi), new Date(to)],
    });
    for (const x of r.rows) {
      let list = bySubject.get(x.s);
      if (!list) bySubject.set(x.s, (list = []));
      list.push({ ts: Number(x.t), lat: x.la, lon: x.lo, accuracy_m: x.a, device_id: x.d });
      const rx = Number(x.rx);
      if (receivedMax === null || rx > receivedMax) receivedMax = rx;
    }
  }
  return { trails: trailsFrom(bySubject), receivedMax };
}

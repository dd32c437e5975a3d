import type { Queryable } from '../platform/db.js';
import { listZones, type ZoneRow } from '../geofence/zones.repo.js';

/** What the subject page's map reads: the latest fix, the live zones, the track as columns. */

export interface LatestFix {
  ts: Date;
  received_at: Date;
  lat: number;
  lon: number;
  accuracy_m: number;
}

/** The newest GPS fix (device time) of any device while it was fitted to the subject, or null. */
export async function latestFix(db: Queryable, subjectId: string): Promise<LatestFix | null> {
  const r = await db.query<LatestFix>(
    `SELECT f.ts, f.received_at, f.lat, f.lon, coalesce(f.accuracy_m, 0) AS accuracy_m
       FROM assignments a
       CROSS JOIN LATERAL (
         SELECT r.ts, r.received_at, r.lat, r.lon, r.accuracy_m FROM readings r
          WHERE r.device_id = a.device_id AND r.stream = 'gps' AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')
            AND r.lat IS NOT NULL AND r.lon IS NOT NULL
          ORDER BY r.ts DESC LIMIT 1) f
      WHERE a.subject_id = $1
      ORDER BY f.ts DESC
      LIMIT 1`,
    [subjectId],
  );
  return r.rows[0] ?? null;
}

/** The subject's zones that are not deleted and not over (`active_to` in the future or none). */
export async function liveZones(db: Queryable, subjectId: string, now: Date): Promise<ZoneRow[]> {
  return (await listZones(db, subjectId)).filter((z) => !z.active_to || z.active_to > now);
}

/**
 * A track as parallel columns (one entry per fix, device-time order): compact to send and to
 * read in the browser (no object per fix). `ts` in epoch milliseconds, `lon`/`lat` WGS84
 * degrees (to 1e-7), `accuracy_m` metres.
 */
export interface TrackColumns {
  ts: number[];
  lon: number[];
  lat: number[];
  accuracy_m: number[];
  truncated: boolean;
}

/** The subject's GPS fixes in [from, to) while each device was fitted to them, at most `limit`. */
export async function trackColumns(db: Queryable, subjectId: string, from: Date, to: Date, limit: number): Promise<TrackColumns> {
  const r = await db.query<[number, number, number, number]>({
    text: `SELECT (extract(epoch FROM r.ts) * 1000)::float8, r.lon, r.lat, coalesce(r.accuracy_m, 0)
             FROM assignments a
             JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps'
              AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3)
            WHERE a.subject_id = $1 AND r.lat IS NOT NULL AND r.lon IS NOT NULL
            ORDER BY r.ts
            LIMIT $4`,
    values: [subjectId, from, to, limit + 1],
    rowMode: 'array',
  });
  const rows = r.rows.length > limit ? r.rows.slice(0, limit) : r.rows;
  const out: TrackColumns = { ts: new Array(rows.length), lon: new Array(rows.length), lat: new Array(rows.length), accuracy_m: new Array(rows.length), truncated: r.rows.length > limit };
  // positions to 1e-7 degrees (about 1 cm): all a GPS fix holds, and a third fewer bytes to send
  const deg = (v: number) => Math.round(v * 1e7) / 1e7;
  rows.forEach((row, i) => {
    out.ts[i] = row[0];
    out.lon[i] = deg(row[1]);
    out.lat[i] = deg(row[2]);
    out.accuracy_m[i] = row[3];
  });
  return out;
}

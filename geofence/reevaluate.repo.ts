import type { Queryable } from '../platform/db.js';
import type { Fix } from './breach.js';

/**
 * The fixes a re-evaluation reads: a subject's GPS fixes in [from, to) from the devices fitted
 * to it at each fix's time, in device-time order (ties by device id).
 */

const FROM = `FROM assignments a
       JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps'
        AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3)
      WHERE a.subject_id = $1`;

/** How many fixes the period holds, counting no further than `cap` (so the count costs at most `cap` rows). */
export async function countFixesUpTo(db: Queryable, subjectId: string, from: Date, to: Date, cap: number): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int n FROM (SELECT 1 ${FROM} LIMIT $4) x`, [subjectId, from, to, cap]);
  return r.rows[0]!.n;
}

/** The period's fixes in chunks of at most `size` (keyset by (ts, device id)): only one chunk is held at a time. */
export async function* fixChunks(db: Queryable, subjectId: string, from: Date, to: Date, size: number): AsyncGenerator<Fix[]> {
  let after: { ts: Date; device: string } | null = null;
  for (;;) {
    const r: { rows: Array<{ ts: Date; device_id: string; lon: number; lat: number; accuracy_m: number }> } = await db.query(
      `SELECT r.ts, r.device_id, r.lon, r.lat, r.accuracy_m ${FROM}
         AND ($5::timestamptz IS NULL OR (r.ts, r.device_id) > ($5::timestamptz, $6::text))
       ORDER BY r.ts, r.device_id LIMIT $4`,
      [subjectId, from, to, size, after?.ts ?? null, after?.device ?? null],
    );
    if (r.rows.length > 0) yield r.rows.map((x) => ({ ts: x.ts.getTime(), lon: x.lon, lat: x.lat, accuracy_m: x.accuracy_m }));
    if (r.rows.length < size) return;
    const last = r.rows[r.rows.length - 1]!;
    after = { ts: last.ts, device: last.device_id };
  }
}

import type { PoolClient } from 'pg';
import type { Fix } from './breach.js';

/**
 * The geofence evaluation's reads and writes: each device's watermark and replay under way
 * (geofence_progress), its fixes in keyset chunks with the subject fitted at each, the count of
 * fixes in its last live range, and the subjects a replay has met. Times are epoch ms, device time.
 */

export interface FixRow extends Fix {
  received_at: number;
  subject_id: string;
}

export interface Progress extends LiveRange {
  watermark: number;
  replayFrom: number | null;
  replayCursor: number | null;
}

/**
 * The last live reads: `liveCount` fixes with ts in (liveFrom, watermark] (exclusive start),
 * counted as loadFixes reads them. Both null when unknown (never read live, or after a replay).
 */
export interface LiveRange {
  liveFrom: number | null;
  liveCount: number | null;
}

/** What loadFixes and subjectsMetInReplay need of a device's evaluation round. */
export interface RoundPlan {
  deviceId: string;
  /** a replay's first round: fixes from `from` inclusive */
  restart: boolean;
  /** fixes after this device time, or from it inclusive when `restart` */
  from: number;
  /** where the replay started */
  replayFrom: number;
}

export interface ProgressWrite extends LiveRange {
  watermark: number;
  replayFrom: number | null;
  replayCursor: number | null;
}

export async function loadProgress(client: PoolClient, ids: string[]): Promise<Map<string, Progress>> {
  const r = await client.query<{ device_id: string; watermark: Date; replay_from: Date | null; replay_cursor: Date | null; live_from: Date | null; live_count: number | null }>(
    `SELECT device_id, watermark, replay_from, replay_cursor, live_from, live_count FROM geofence_progress WHERE device_id = ANY($1::text[])`,
    [ids],
  );
  return new Map(
    r.rows.map((x) => [
      x.device_id,
      {
        watermark: x.watermark.getTime(),
        replayFrom: x.replay_from?.getTime() ?? null,
        replayCursor: x.replay_cursor?.getTime() ?? null,
        liveFrom: x.live_from?.getTime() ?? null,
        liveCount: x.live_count,
      },
    ]),
  );
}

/** Moves the watermarks forward (never back), sets or clears each device's replay under way and its live range. */
export async function writeProgress(client: PoolClient, marks: ReadonlyMap<string, ProgressWrite>): Promise<void> {
  const ids = [...marks.keys()].sort().filter((d) => Number.isFinite(marks.get(d)!.watermark));
  if (ids.length === 0) return;
  const at = (t: number | null) => (t === null ? null : new Date(t));
  await client.query(
    `INSERT INTO geofence_progress (device_id, watermark, replay_from, replay_cursor, live_from, live_count)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::int[])
     ON CONFLICT (device_id) DO UPDATE SET watermark = greatest(geofence_progress.watermark, excluded.watermark),
       replay_from = excluded.replay_from, replay_cursor = excluded.replay_cursor,
       live_from = excluded.live_from, live_count = excluded.live_count, updated_at = now()`,
    [
      ids,
      ids.map((d) => at(marks.get(d)!.watermark)),
      ids.map((d) => at(marks.get(d)!.replayFrom)),
      ids.map((d) => at(marks.get(d)!.replayCursor)),
      ids.map((d) => at(marks.get(d)!.liveFrom)),
      ids.map((d) => marks.get(d)!.liveCount),
    ],
  );
}

/**
 * The number of fixes each device has now in (from, to] (device time, exclusive start), counted
 * as loadFixes reads them: gps readings joined to the assignment fitted at their time.
 */
export async function countFixes(client: PoolClient, ranges: ReadonlyArray<{ deviceId: string; from: number; to: number }>): Promise<Map<string, number>> {
  if (ranges.length === 0) return new Map();
  const r = await client.query<{ device_id: string; n: number }>(
    `SELECT q.device_id, c.n
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS q(device_id, from_ts, to_ts)
       CROSS JOIN LATERAL (
         SELECT count(*)::int n
           FROM readings r
           JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')
          WHERE r.device_id = q.device_id AND r.stream = 'gps' AND r.ts > q.from_ts AND r.ts <= q.to_ts) AS c`,
    [ranges.map((x) => x.deviceId), ranges.map((x) => new Date(x.from)), ranges.map((x) => new Date(x.to))],
  );
  return new Map(r.rows.map((x) => [x.device_id, x.n]));
}

/** For each replay going on from its cursor: the subjects whose fixes on the device it has already evaluated. */
export async function subjectsMetInReplay(client: PoolClient, plans: RoundPlan[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  if (plans.length === 0) return out;
  const r = await client.query<{ device_id: string; subject_id: string }>(
    `SELECT DISTINCT a.device_id, a.subject_id
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS q(device_id, from_ts, to_ts)
       JOIN assignments a ON a.device_id = q.device_id AND a.start_at <= q.to_ts AND coalesce(a.end_at, 'infinity') > q.from_ts
      WHERE EXISTS (SELECT 1 FROM readings r WHERE r.device_id = q.device_id AND r.stream = 'gps' AND r.ts >= greatest(q.from_ts, a.start_at)
                       AND r.ts <= q.to_ts AND r.ts < coalesce(a.end_at, 'infinity'))`,
    [plans.map((p) => p.deviceId), plans.map((p) => new Date(p.replayFrom)), plans.map((p) => new Date(p.from))],
  );
  for (const x of r.rows) out.set(x.device_id, (out.get(x.device_id) ?? new Set()).add(x.subject_id));
  return out;
}

/**
 * Each device's first `chunk` fixes after its `from` (inclusive when a replay starts), in
 * device-time order (keyset: the readings' key is (device, stream, ts)), with the subject
 * fitted at each fix's time.
 */
export async function loadFixes(client: PoolClient, plans: RoundPlan[], chunk: number): Promise<Map<string, FixRow[]>> {
  const r = await client.query<{ device_id: string; ts: Date; lon: number; lat: number; accuracy_m: number; received_at: Date; subject_id: string }>(
    `SELECT q.device_id, f.ts, f.lon, f.lat, f.accuracy_m, f.received_at, f.subject_id
       FROM unnest($1::text[], $2::timestamptz[], $3::boolean[]) WITH ORDINALITY AS q(device_id, from_ts, incl, n)
       CROSS JOIN LATERAL (
         SELECT r.ts, r.lon, r.lat, r.accuracy_m, r.received_at, a.subject_id
           FROM readings r
           JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')
          WHERE r.device_id = q.device_id AND r.stream = 'gps' AND (r.ts > q.from_ts OR (q.incl AND r.ts = q.from_ts))
          ORDER BY r.ts LIMIT $4) AS f
      ORDER BY q.n, f.ts`,
    [plans.map((p) => p.deviceId), plans.map((p) => new Date(p.from)), plans.map((p) => p.restart), chunk],
  );
  const out = new Map<string, FixRow[]>(plans.map((p) => [p.deviceId, []]));
  for (const x of r.rows) {
    out.get(x.device_id)!.push({ ts: x.ts.getTime(), lon: x.lon, lat: x.lat, accuracy_m: x.accuracy_m, received_at: x.received_at.getTime(), subject_id: x.subject_id });
  }
  return out;
}

import type { Queryable, TxClient } from '../platform/db.js';
import type { Stream } from '../signals/streams.js';
import type { AlertType } from '../alerts/rules.js';
import type { HealthState, StatusIn } from './health.js';

/** Tag health's reads and writes: the stored health per device, receipts, fittings, status readings. */

export interface HealthRow extends HealthState {
  last_received_at: Date | null;
  last_ts: Date | null;
  last_gps_received_at: Date | null;
  last_status_received_at: Date | null;
}

/** A health row as written: device, last receipt, last device time, last gps and status receipts, strap, case, low, percent. */
export type HealthWrite = [string, Date | null, Date | null, Date | null, Date | null, boolean, boolean, boolean, number | null];

export interface Receipts {
  device_id: string;
  stream: Stream;
  first_rec: Date;
  last_rec: Date;
  last_ts: Date;
}

export async function loadHealth(tx: Queryable, deviceIds: readonly string[]): Promise<Map<string, HealthRow>> {
  const r = await tx.query<HealthRow & { device_id: string }>(`SELECT * FROM device_health WHERE device_id = ANY($1::text[])`, [deviceIds]);
  return new Map(r.rows.map((x) => [x.device_id, x]));
}

/** Per device and stream, the readings with device time ≥ `since` received after `after` (null: any): first and last receipt, last device time. */
export async function newReceipts(tx: Queryable, deviceIds: readonly string[], since: readonly Date[], after: ReadonlyArray<Date | null>): Promise<Receipts[]> {
  const r = await tx.query<Receipts>(
    `SELECT q.device_id, f.stream, f.first_rec, f.last_rec, f.last_ts
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS q(device_id, since, after)
       CROSS JOIN LATERAL (
         SELECT stream, min(received_at) first_rec, max(received_at) last_rec, max(ts) last_ts FROM readings
          WHERE device_id = q.device_id AND stream = ANY('{gps,alcohol,status}'::text[]) AND ts >= q.since
            AND received_at > coalesce(q.after, '-infinity') GROUP BY stream) AS f`,
    [deviceIds, since, after],
  );
  return r.rows;
}

/** The subject each device is fitted to at `at` (devices fitted to nobody are absent). */
export async function fittedSubjects(tx: Queryable, deviceIds: readonly string[], at: Date): Promise<Map<string, string>> {
  const r = await tx.query<{ device_id: string; subject_id: string }>(
    `SELECT device_id, subject_id FROM assignments WHERE device_id = ANY($1::text[]) AND start_at <= $2 AND coalesce(end_at, 'infinity') > $2`,
    [deviceIds, at],
  );
  return new Map(r.rows.map((x) => [x.device_id, x.subject_id]));
}

/** `subject|type` of the absence alerts (no_signal, no_gps_fix) still open or acknowledged. */
export async function openAbsences(tx: Queryable, subjectIds: readonly string[]): Promise<Set<string>> {
  const r = await tx.query<{ subject_id: string; type: AlertType }>(
    `SELECT DISTINCT subject_id, type FROM alerts
      WHERE subject_id = ANY($1::text[]) AND type IN ('no_signal', 'no_gps_fix') AND zone_id IS NULL AND status IN ('open', 'acknowledged')`,
    [subjectIds],
  );
  return new Set(r.rows.map((x) => `${x.subject_id}|${x.type}`));
}

/** A device's status readings from device time `from`, in device-time order. */
export async function statusReadings(tx: Queryable, deviceId: string, from: Date): Promise<Array<{ ts: Date; data: StatusIn & { ts: string }; received_at: Date }>> {
  const r = await tx.query<{ ts: Date; data: StatusIn & { ts: string }; received_at: Date }>(
    `SELECT ts, data, received_at FROM readings WHERE device_id = $1 AND stream = 'status' AND ts >= $2 ORDER BY ts`,
    [deviceId, from],
  );
  return r.rows;
}

/** The condition of a subject's alerts of `type` ended at `at` (a strap closed again). */
export async function endConditionsOfType(tx: TxClient, subjectId: string, type: AlertType, at: Date): Promise<void> {
  await tx.query(`UPDATE alerts SET ended_at = $3, updated_at = now() WHERE subject_id = $1 AND type = $2 AND ended_at IS NULL`, [subjectId, type, at]);
}

/** Writes changed health rows in one statement (a receipt time absent from a write keeps the stored one). */
export async function writeHealth(tx: TxClient, writes: readonly HealthWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const col = (i: number) => writes.map((w) => w[i]);
  await tx.query(
    `INSERT INTO device_health (device_id, last_received_at, last_ts, last_gps_received_at, last_status_received_at, strap_open, case_open, battery_low, battery_pct)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::boolean[], $7::boolean[], $8::boolean[], $9::float8[])
     ON CONFLICT (device_id) DO UPDATE SET last_received_at = excluded.last_received_at, last_ts = excluded.last_ts,
       last_gps_received_at = coalesce(excluded.last_gps_received_at, device_health.last_gps_received_at),
       last_status_received_at = coalesce(excluded.last_status_received_at, device_health.last_status_received_at),
       strap_open = excluded.strap_open, case_open = excluded.case_open, battery_low = excluded.battery_low,
       battery_pct = excluded.battery_pct, updated_at = now()`,
    [0, 1, 2, 3, 4, 5, 6, 7, 8].map(col),
  );
}

export interface FittedNow {
  device_id: string;
  subject_id: string;
  kind: string;
  start_at: Date;
  last_received_at: Date | null;
  last_ts: Date | null;
  last_gps_received_at: Date | null;
  last_status_received_at: Date | null;
}

/** Every active device fitted at `at`, with its stored receipts (the clock's checks). */
export async function fittedNow(db: Queryable, at: Date): Promise<FittedNow[]> {
  const r = await db.query<FittedNow>(
    `SELECT a.device_id, a.subject_id, d.kind, a.start_at, h.last_received_at, h.last_ts, h.last_gps_received_at, h.last_status_received_at
       FROM assignments a JOIN devices d ON d.id = a.device_id LEFT JOIN device_health h ON h.device_id = a.device_id
      WHERE a.start_at <= $1 AND coalesce(a.end_at, 'infinity') > $1 AND d.active
      ORDER BY a.device_id`,
    [at],
  );
  return r.rows;
}

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { Pool, Queryable } from '../platform/db.js';
import type { Reading, Rejection } from './telemetry.js';
import type { Stream } from '../signals/streams.js';

export interface StoreResult {
  /** readings written by this call */
  stored: Reading[];
  /** readings already stored with the same content (redeliveries): nothing to write */
  duplicates: Reading[];
  /** readings refused by the database check: unknown or inactive device, identity conflict */
  rejections: Rejection[];
}

/**
 * Writes readings idempotently (`ON CONFLICT DO NOTHING` on the identity, one statement) and,
 * only when some were not written, tells each of those apart with a second one: unknown
 * device, inactive device, a redelivery of the same reading, or a different reading under a
 * stored identity (a conflict). `readings` must hold no two items with one identity (the
 * batcher removes those first).
 */
export async function storeReadings(db: Queryable, readings: Reading[], topicOf: (r: Reading) => string): Promise<StoreResult> {
  if (readings.length === 0) return { stored: [], duplicates: [], rejections: [] };
  const rows = readings.map((r, idx) => ({
    idx,
    device_id: r.deviceId,
    stream: r.stream,
    ts: r.ts,
    lat: r.lat,
    lon: r.lon,
    accuracy_m: r.accuracy_m,
    tac: r.tac,
    temp_c: r.temp_c,
    ir: r.ir,
    battery_pct: r.battery_pct,
    data: r.data,
  }));
  // The common case, one statement: write what belongs to active devices, skip identities
  // already stored, and count what was written (with the statement's time, which every row
  // it wrote carries as received_at).
  const written = await db.query<{ n: number; at: string }>(
    `WITH ins AS (
       INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, tac, temp_c, ir, battery_pct, data)
       SELECT t.device_id, t.stream, t.ts, t.lat, t.lon, t.accuracy_m, t.tac, t.temp_c, t.ir, t.battery_pct, t.data
         FROM jsonb_to_recordset($1::jsonb) AS t(device_id text, stream text, ts timestamptz,
              lat float8, lon float8, accuracy_m float8, tac float8, temp_c float8, ir float8, battery_pct float8, data jsonb)
         JOIN devices d ON d.id = t.device_id AND d.active
       ON CONFLICT DO NOTHING
       RETURNING 1)
     SELECT count(*)::int AS n, now()::text AS at FROM ins`,
    [JSON.stringify(rows)],
  );
  const { n, at } = written.rows[0]!;
  if (n === readings.length) return { stored: readings, duplicates: [], rejections: [] };
  // The rare case (redeliveries, unknown or inactive devices, conflicts): tell them apart; a row
  // received at this statement's time was written by it.
  const res = await db.query<{ idx: number; active: boolean | null; existing: boolean; ours: boolean; same: boolean | null }>(
    `SELECT t.idx, d.active, r.device_id IS NOT NULL AS existing, r.received_at = $2::timestamptz AS ours, r.data = t.data AS same
       FROM jsonb_to_recordset($1::jsonb) AS t(idx int, device_id text, stream text, ts timestamptz, data jsonb)
       LEFT JOIN devices d ON d.id = t.device_id
       LEFT JOIN readings r ON r.device_id = t.device_id AND r.stream = t.stream AND r.ts = t.ts`,
    [JSON.stringify(rows.map(({ idx, device_id, stream, ts, data }) => ({ idx, device_id, stream, ts, data }))), at],
  );
  const notStored = new Set<number>();
  const rejections: Rejection[] = [];
  const recheck: Reading[] = [];
  const duplicates: Reading[] = [];
  for (const row of res.rows) {
    if (row.ours) continue;
    const r = readings[row.idx]!;
    notStored.add(row.idx);
    if (row.active === null) rejections.push(rejectionOf(r, topicOf(r), 'unknown_device', `device ${r.deviceId} is not registered`));
    else if (!row.active) rejections.push(rejectionOf(r, topicOf(r), 'inactive_device', `device ${r.deviceId} is not active`));
    else if (!row.existing) recheck.push(r); // written by a concurrent transaction after our snapshot
    else if (row.same) duplicates.push(r);
    else rejections.push(conflictOf(r, topicOf(r)));
  }
  for (const r of recheck) {
    const same = await sameAsStored(db, r);
    if (same) duplicates.push(r);
    else rejections.push(conflictOf(r, topicOf(r)));
  }
  return { stored: readings.filter((_, i) => !notStored.has(i)), duplicates, rejections };
}

/**
 * The fast path for a large batch: one COPY straight into `readings` (PostgreSQL spends about
 * two thirds of the time of `INSERT … ON CONFLICT` on it, measured in docs/benchmarks.md). COPY
 * cannot skip rows, so it commits only when none can be refused: in the same simple-protocol
 * query, hence the same transaction, a check after the COPY raises unless every device of the
 * batch is registered and active, which rolls the COPY back; and an identity already stored
 * aborts the COPY with a unique violation. Either way nothing was written and the batch goes
 * through `storeReadings`. One round trip for the statement (two with the COPY's own start),
 * not one more for a separate check.
 */
export async function storeReadingsFast(pool: Pool, readings: Reading[], topicOf: (r: Reading) => string, copy: Buffer[] | null = null): Promise<StoreResult> {
  if (readings.length < COPY_MIN_ROWS) return storeReadings(pool, readings, topicOf);
  const devices = new Set<string>();
  for (const r of readings) devices.add(r.deviceId);
  const check = activeDevicesCheck(devices);
  if (!check) return storeReadings(pool, readings, topicOf);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await pipeline(Readable.from(copy ?? [...copyChunks(readings)]), client.query(copyFrom(`COPY readings (${COPY_COLUMNS}) FROM STDIN; ${check}`)));
    return { stored: readings, duplicates: [], rejections: [] };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== UNIQUE_VIOLATION && code !== NOT_ALL_ACTIVE) throw (broken = err as Error);
  } finally {
    client.release(broken);
  }
  // an unregistered or inactive device, or an identity already stored: the general statement
  return storeReadings(pool, readings, topicOf);
}

/**
 * A statement that raises NOT_ALL_ACTIVE unless every device is registered and active. The ids
 * go into the text (a simple-protocol query has no parameters), so only ids of the topic's
 * character set are taken (the topic pattern lets no other through); otherwise null.
 */
function activeDevicesCheck(devices: Set<string>): string | null {
  for (const d of devices) if (!SAFE_ID.test(d)) return null;
  return `DO $check$ BEGIN
    IF (SELECT count(*) FROM devices WHERE id = ANY ('{${[...devices].join(',')}}'::text[]) AND active) <> ${devices.size} THEN
      RAISE EXCEPTION 'a device of this batch is not registered or not active' USING ERRCODE = '${NOT_ALL_ACTIVE}';
    END IF;
  END $check$`;
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** SQLSTATE of activeDevicesCheck's exception: a class of our own, so nothing else raises it */
const NOT_ALL_ACTIVE = 'TW001';

/** The COPY text `storeReadingsFast` would send for these readings, or null when it would not COPY them. */
export function copyTextFor(readings: Reading[]): Buffer[] | null {
  return readings.length < COPY_MIN_ROWS ? null : [...copyChunks(readings)];
}

/** Below this many readings a COPY's extra round trips cost more than it saves. */
const COPY_MIN_ROWS = 200;
const UNIQUE_VIOLATION = '23505';
const COPY_COLUMNS = 'device_id, stream, ts, lat, lon, accuracy_m, tac, temp_c, ir, battery_pct, data';

/**
 * COPY text-format rows in chunks (one CopyData message, one socket write each).
 * Hot path (every reading of a large batch). What needs no escaping is not scanned: the device
 * id (the topic pattern), the stream and `ts` (the RFC 3339 pattern) hold only letters, digits
 * and `-_:.+`, and JSON.stringify writes control characters as `\n`-style escapes, so in the JSON
 * only backslashes must be doubled (COPY reads `\\` as one).
 */
export function* copyChunks(readings: Reading[]): Generator<Buffer> {
  let text = '';
  for (const r of readings) {
    const json = JSON.stringify(r.data);
    text +=
      r.deviceId + '\t' + r.stream + '\t' + r.ts + '\t' +
      copyNum(r.lat) + '\t' + copyNum(r.lon) + '\t' + copyNum(r.accuracy_m) + '\t' + copyNum(r.tac) + '\t' +
      copyNum(r.temp_c) + '\t' + copyNum(r.ir) + '\t' + copyNum(r.battery_pct) + '\t' +
      (json.includes('\\') ? json.replaceAll('\\', '\\\\') : json) + '\n';
    if (text.length >= COPY_CHUNK_CHARS) {
      yield Buffer.from(text);
      text = '';
    }
  }
  if (text) yield Buffer.from(text);
}

/**
 * About 128 KiB per CopyData message. Each chunk becomes bytes outside the JS heap as soon as it
 * is complete, so the many short strings that build it die young.
 */
const COPY_CHUNK_CHARS = 131_072;

function copyNum(v: number | null): string {
  return v === null ? '\\N' : '' + v;
}

async function sameAsStored(db: Queryable, r: Reading): Promise<boolean> {
  const res = await db.query<{ same: boolean }>(
    `SELECT data = $4::jsonb AS same FROM readings WHERE device_id = $1 AND stream = $2 AND ts = $3`,
    [r.deviceId, r.stream, r.ts, JSON.stringify(r.data)],
  );
  return res.rows[0]?.same ?? false;
}

export function conflictOf(r: Reading, topic: string): Rejection {
  return rejectionOf(r, topic, 'conflict', `a different ${r.stream} reading of ${r.deviceId} at ${r.ts} is already stored`);
}

function rejectionOf(r: Reading, topic: string, code: Rejection['code'], detail: string): Rejection {
  return { topic, deviceId: r.deviceId, itemIndex: null, code, reason: `${code}: ${detail}`, raw: Buffer.from(JSON.stringify(r.data)) };
}

export async function storeRejections(db: Queryable, rejections: Rejection[]): Promise<void> {
  if (rejections.length === 0) return;
  await db.query(
    `INSERT INTO rejections (topic, device_id, item_index, reason, raw)
     SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bytea[])`,
    [
      rejections.map((r) => r.topic),
      rejections.map((r) => r.deviceId),
      rejections.map((r) => r.itemIndex),
      rejections.map((r) => r.reason),
      rejections.map((r) => r.raw),
    ],
  );
}

export interface TrackFix {
  ts: Date;
  lat: number;
  lon: number;
  accuracy_m: number;
  data: Record<string, unknown>;
}

/** GPS fixes of a subject in [from, to), in device-time order, through the assignments covering each fix. */
export async function subjectFixes(db: Queryable, subjectId: string, from: Date, to: Date, limit: number): Promise<TrackFix[]> {
  const res = await db.query<TrackFix>(
    `SELECT r.ts, r.lat, r.lon, r.accuracy_m, r.data
       FROM assignments a
       JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps'
        AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3)
      WHERE a.subject_id = $1
      ORDER BY r.ts
      LIMIT $4`,
    [subjectId, from, to, limit],
  );
  return res.rows;
}

export async function countReadings(db: Queryable, stream?: Stream): Promise<number> {
  const res = await db.query<{ n: string }>(
    stream ? `SELECT count(*) AS n FROM readings WHERE stream = $1` : `SELECT count(*) AS n FROM readings`,
    stream ? [stream] : [],
  );
  return Number(res.rows[0]!.n);
}

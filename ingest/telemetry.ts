import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/**
 * Telemetry schema and parsing (contract §1). Pure: time comes in as `nowMs` (epoch
 * milliseconds, server clock); no I/O.
 */

import type { Stream } from '../signals/streams.js';

export const DEVICE_ID_PATTERN = '^[A-Za-z0-9_-]{3,64}$';
export const MAX_PAYLOAD_BYTES = 256 * 1024;
export const MAX_BATCH_ITEMS = 1000;
export const MAX_RAW_BYTES = 64 * 1024;
export const MAX_FUTURE_MS = 5 * 60 * 1000;

/** RFC 3339 date-time, offset or Z, fractional seconds allowed. */
const RFC3339 = '^\\d{4}-\\d{2}-\\d{2}[Tt]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2})$';
const Ts = Type.String({ pattern: RFC3339, description: 'device time of measurement, RFC 3339' });

export const GpsReading = Type.Object({
  ts: Ts,
  lat: Type.Number({ minimum: -90, maximum: 90, description: 'WGS84 latitude, degrees' }),
  lon: Type.Number({ minimum: -180, maximum: 180, description: 'WGS84 longitude, degrees' }),
  accuracy_m: Type.Number({ exclusiveMinimum: 0, maximum: 10000, description: 'radius of 68 % confidence, metres' }),
  speed_mps: Type.Optional(Type.Number({ minimum: 0 })),
  heading_deg: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 360 })),
  fix: Type.Optional(Type.Union([Type.Literal('gps'), Type.Literal('wifi'), Type.Literal('cell')])),
  sats: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const AlcoholReading = Type.Object({
  ts: Ts,
  tac: Type.Number({ minimum: 0, maximum: 1, description: 'transdermal alcohol concentration, g/dL' }),
  temp_c: Type.Number({ minimum: -20, maximum: 60, description: 'device temperature at the skin, °C' }),
  ir: Type.Optional(Type.Number({ minimum: 0, maximum: 5, description: 'infrared proximity voltage, V' })),
});
export const StatusReading = Type.Object({
  ts: Ts,
  battery_pct: Type.Number({ minimum: 0, maximum: 100 }),
  strap: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('open')])),
  case: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('open')])),
  charging: Type.Optional(Type.Boolean()),
  rssi_dbm: Type.Optional(Type.Number()),
  event: Type.Optional(
    Type.Union(
      ['heartbeat', 'strap_tamper', 'case_tamper', 'low_battery', 'power_on', 'shutdown'].map((e) => Type.Literal(e)),
    ),
  ),
});
export type GpsReading = Static<typeof GpsReading>;
export type AlcoholReading = Static<typeof AlcoholReading>;
export type StatusReading = Static<typeof StatusReading>;

const checkers: Record<Stream, ReturnType<typeof TypeCompiler.Compile<TSchema>>> = {
  gps: TypeCompiler.Compile(GpsReading),
  alcohol: TypeCompiler.Compile(AlcoholReading),
  status: TypeCompiler.Compile(StatusReading),
};

/** A valid reading, ready to store. Numeric columns are null where the stream has none. */
export interface Reading {
  deviceId: string;
  stream: Stream;
  /** the device's `ts` as sent (Postgres parses it, keeping sub-millisecond digits) */
  ts: string;
  tsMs: number;
  lat: number | null;
  lon: number | null;
  accuracy_m: number | null;
  tac: number | null;
  temp_c: number | null;
  ir: number | null;
  battery_pct: number | null;
  /** the reading object exactly as received, unknown fields included */
  data: Record<string, unknown>;
}

export type RejectionCode =
  | 'bad_topic'
  | 'too_large'
  | 'not_json'
  | 'bad_batch'
  | 'invalid'
  | 'null_island'
  | 'ts_future'
  | 'ts_too_old'
  | 'unknown_device'
  | 'inactive_device'
  | 'conflict';

export interface Rejection {
  topic: string;
  deviceId: string | null;
  /** index in the batch, null for a whole message */
  itemIndex: number | null;
  code: RejectionCode;
  /** human-readable reason, starting with the code */
  reason: string;
  raw: Buffer;
}

export interface ParsedMessage {
  readings: Reading[];
  rejections: Rejection[];
}

const TOPIC = new RegExp(`^tags/v1/([A-Za-z0-9_-]{3,64})/(gps|alcohol|status)$`);

export function parseTopic(topic: string): { deviceId: string; stream: Stream } | null {
  const m = TOPIC.exec(topic);
  return m ? { deviceId: m[1]!, stream: m[2] as Stream } : null;
}

/** Reasons are stored as text: PostgreSQL text holds no NUL, and a reason stays short. */
export function cleanReason(reason: string): string {
  return reason.replace(/\u0000/g, '\\0').slice(0, 1000);
}

function truncate(raw: Buffer): Buffer {
  return raw.length > MAX_RAW_BYTES ? raw.subarray(0, MAX_RAW_BYTES) : raw;
}

/**
 * Parses and validates one MQTT message. Every item is either a Reading or a Rejection, so a
 * batch with bad items keeps its good ones. `retentionDays` bounds how old a `ts` may be.
 */
export function parseMessage(topic: string, payload: Buffer, nowMs: number, retentionDays: number): ParsedMessage {
  const t = parseTopic(topic);
  if (!t) return rejectWhole(topic, null, 'bad_topic', `topic must be tags/v1/{deviceId}/{gps|alcohol|status}`, payload);
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return rejectWhole(topic, t.deviceId, 'too_large', `payload is ${payload.length} bytes, over the ${MAX_PAYLOAD_BYTES} limit`, payload);
  }
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return rejectWhole(topic, t.deviceId, 'not_json', `payload is not JSON (${(err as Error).message})`, payload);
  }
  const out: ParsedMessage = { readings: [], rejections: [] };
  const oldestMs = nowMs - retentionDays * 86_400_000;
  if (!Array.isArray(body)) {
    const r = validateReading(t.deviceId, t.stream, body, nowMs, oldestMs);
    if (r instanceof Invalid) out.rejections.push(itemRejection(topic, t.deviceId, r, null, payload));
    else out.readings.push(r);
    return out;
  }
  const items = body as unknown[];
  if (items.length < 1 || items.length > MAX_BATCH_ITEMS) {
    return rejectWhole(topic, t.deviceId, 'bad_batch', `a batch holds 1 to ${MAX_BATCH_ITEMS} readings, this one ${items.length}`, payload);
  }
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const r = validateReading(t.deviceId, t.stream, item, nowMs, oldestMs);
    if (r instanceof Invalid) out.rejections.push(itemRejection(topic, t.deviceId, r, i, Buffer.from(JSON.stringify(item) ?? 'undefined')));
    else out.readings.push(r);
  }
  return out;
}

function rejectWhole(topic: string, deviceId: string | null, code: RejectionCode, detail: string, raw: Buffer): ParsedMessage {
  return { readings: [], rejections: [{ topic, deviceId, itemIndex: null, code, reason: cleanReason(`${code}: ${detail}`), raw: truncate(raw) }] };
}

function itemRejection(topic: string, deviceId: string, r: Invalid, itemIndex: number | null, raw: Buffer): Rejection {
  const where = itemIndex === null ? '' : `item ${itemIndex}: `;
  return { topic, deviceId, itemIndex, code: r.code, reason: cleanReason(`${r.code}: ${where}${r.detail}`), raw: truncate(raw) };
}

/** Why an item is not a reading. */
class Invalid {
  constructor(
    readonly code: RejectionCode,
    readonly detail: string,
  ) {}
}

/** A numeric field's value, or null (left out, or not a number). */
function num(v: unknown): number | null {
  return typeof v === 'number' ? v : null;
}

/**
 * One item against contract §1. Hot path (every reading): the schema check is TypeBox's
 * compiled function, the date checks read character codes, and the Reading is built once.
 */
function validateReading(deviceId: string, stream: Stream, item: unknown, nowMs: number, oldestMs: number): Reading | Invalid {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return new Invalid('invalid', 'a reading must be a JSON object');
  const checker = checkers[stream];
  if (!checker.Check(item)) {
    const e = checker.Errors(item).First();
    const field = e?.path.replace(/^\//, '') || '(reading)';
    return new Invalid('invalid', `${stream}.${field}: ${e?.message ?? 'invalid'}`);
  }
  const o = item as Record<string, unknown>;
  const ts = o.ts as string;
  // the schema's pattern has checked the shape; Date.parse reads only upper-case T and Z
  const tsMs = Date.parse(hasLowerCase(ts) ? ts.toUpperCase() : ts);
  if (!Number.isFinite(tsMs) || !isRealDate(ts)) return new Invalid('invalid', `${stream}.ts: ${ts} is not a real date-time`);
  if (tsMs > nowMs + MAX_FUTURE_MS) return new Invalid('ts_future', `ts ${ts} is more than 5 minutes ahead of the server clock`);
  if (tsMs < oldestMs) return new Invalid('ts_too_old', `ts ${ts} is older than the raw-data retention`);
  if (stream === 'gps' && o.lat === 0 && o.lon === 0) {
    return new Invalid('null_island', 'a fix at exactly 0,0 is a receiver null position');
  }
  // every numeric column from the reading's own fields, whatever its stream (as always stored)
  return {
    deviceId,
    stream,
    ts,
    tsMs,
    lat: num(o.lat),
    lon: num(o.lon),
    accuracy_m: num(o.accuracy_m),
    tac: num(o.tac),
    temp_c: num(o.temp_c),
    ir: num(o.ir),
    battery_pct: num(o.battery_pct),
    data: o,
  };
}

/** `t` at index 10 or a trailing `z` (RFC 3339 allows both). */
function hasLowerCase(ts: string): boolean {
  return ts.charCodeAt(10) === 0x74 || ts.charCodeAt(ts.length - 1) === 0x7a;
}

/** Two digits at `i` (the pattern has checked they are digits). */
function d2(s: string, i: number): number {
  return (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
}

/** Date.parse rolls 2026-02-30 over to March; a real date keeps its own fields. */
function isRealDate(ts: string): boolean {
  const y = d2(ts, 0) * 100 + d2(ts, 2);
  const mo = d2(ts, 5);
  const d = d2(ts, 8);
  if (mo < 1 || mo > 12 || d2(ts, 11) > 23 || d2(ts, 14) > 59 || d2(ts, 17) > 59) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = mo === 2 ? (leap ? 29 : 28) : mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
  return d >= 1 && d <= days;
}

/** Identity of a reading (contract §1): one stored row per key. */
export function readingKey(r: Pick<Reading, 'deviceId' | 'stream' | 'tsMs' | 'ts'>): string {
  return `${r.deviceId}\u0000${r.stream}\u0000${r.tsMs}`;
}

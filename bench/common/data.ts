/**
 * Deterministic bench telemetry: the same messages for every phase, so the COPY ceiling, the
 * broker ceiling and the end-to-end runs move identical bytes. Pure: the time base comes in.
 */

const STREAM_MIX = ['gps', 'gps', 'gps', 'alcohol', 'status'] as const;
type BenchStream = (typeof STREAM_MIX)[number];

export interface LoadShape {
  /** registered active devices, `bench-00000` … */
  devices: number;
  /** readings per message: 1 (live) or a store-and-forward batch */
  perMessage: number;
  /** epoch milliseconds of each device's first reading; later readings follow one second apart */
  tsBaseMs: number;
}

export interface BenchMessage {
  topic: string;
  readings: Array<Record<string, unknown>>;
}

export function benchDeviceId(i: number): string {
  return `bench-${String(i).padStart(5, '0')}`;
}

/** A small deterministic hash in [0, 1), so values vary without a random generator. */
function frac(a: number, b: number): number {
  const x = Math.sin(a * 12.9898 + b * 78.233) * 43758.5453;
  return x - Math.floor(x);
}

/**
 * Message `m` (0-based) of a load: device `m % devices`, that device's next `perMessage`
 * readings (device times one second apart, unique per device). `sentAt` (RFC 3339) is kept by
 * ingest in the jsonb `data` column, for publish-to-commit latency.
 */
export function benchMessage(shape: LoadShape, m: number, sentAt?: string): BenchMessage {
  const device = m % shape.devices;
  const round = Math.floor(m / shape.devices);
  const stream: BenchStream = STREAM_MIX[device % STREAM_MIX.length]!;
  const readings: Array<Record<string, unknown>> = [];
  for (let i = 0; i < shape.perMessage; i++) {
    const seq = round * shape.perMessage + i;
    const r = reading(stream, device, seq, new Date(shape.tsBaseMs + seq * 1000).toISOString());
    if (sentAt) r.sent_at = sentAt;
    readings.push(r);
  }
  return { topic: `tags/v1/${benchDeviceId(device)}/${stream}`, readings };
}

export function messagePayload(msg: BenchMessage, asBatch: boolean): string {
  return JSON.stringify(asBatch ? msg.readings : msg.readings[0]);
}

function reading(stream: BenchStream, device: number, seq: number, ts: string): Record<string, unknown> {
  const f = (k: number) => frac(device + k, seq);
  if (stream === 'gps') {
    return {
      ts,
      lat: round6(51.3 + 0.4 * f(1)),
      lon: round6(-0.5 + 0.6 * f(2)),
      accuracy_m: round1(3 + 40 * f(3)),
      speed_mps: round1(2 * f(4)),
      heading_deg: round1(359 * f(5)),
      fix: 'gps',
      sats: 4 + Math.floor(8 * f(6)),
    };
  }
  if (stream === 'alcohol') return { ts, tac: round6(0.03 * f(1)), temp_c: round1(31 + 3 * f(2)), ir: round1(0.8 + f(3)) };
  return { ts, battery_pct: Math.floor(20 + 80 * f(1)), strap: 'ok', case: 'ok', charging: false, rssi_dbm: -60 - Math.floor(30 * f(2)), event: 'heartbeat' };
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** COPY text-format field: `\N` for null, backslash and control characters escaped. */
function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  const s = typeof v === 'string' ? v : String(v);
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export const COPY_COLUMNS = 'device_id, stream, ts, lat, lon, accuracy_m, tac, temp_c, ir, battery_pct, data';

/** The readings-table rows of a message, as COPY text lines (the columns of COPY_COLUMNS). */
export function copyLines(msg: BenchMessage): string {
  const [, , deviceId, stream] = msg.topic.split('/');
  let out = '';
  for (const r of msg.readings) {
    const num = (k: string) => (typeof r[k] === 'number' ? r[k] : null);
    const fields = [deviceId, stream, r.ts, num('lat'), num('lon'), num('accuracy_m'), num('tac'), num('temp_c'), num('ir'), num('battery_pct'), JSON.stringify(r)];
    out += fields.map(copyField).join('\t') + '\n';
  }
  return out;
}

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../../scripts/stack.js';
import { stopChild } from './procs.js';

/**
 * A simulated fleet publishing paced telemetry over MQTT, run as a child process (fleet-child.ts)
 * so its CPU is apart from the service's. Device `i` of `n` sends its k-th periodic message at
 * t0 + (k·n + i)·interval/n: the fleet's load is spread evenly over each interval. Extra
 * one-off messages (a tamper) go out at their own times. Every reading carries `sent_at`, the
 * time it was handed to MQTT, which ingest keeps in readings.data (an unknown extra field).
 *
 * Message contents are pure functions of the plan, the device, k and the due time, so the
 * bench knows the ground truth without asking the publisher.
 */

export interface GeoDevicePlan {
  id: string;
  /** where the device usually is, [lon, lat] */
  home: [number, number];
  /** inside its exclusion zone for periodic messages fromK ≤ k < toK, around `at` */
  breach: { at: [number, number]; fromK: number; toK: number } | null;
}

export interface AlertsDevicePlan {
  id: string;
  /** ms after t0 when the strap is cut (a status reading with strap open), or null */
  tamperAtMs: number | null;
}

export type Scenario =
  | { kind: 'geofence'; intervalMs: number; devices: GeoDevicePlan[] }
  | { kind: 'alerts'; intervalMs: number; devices: AlertsDevicePlan[] };

export interface FleetJob {
  url: string;
  connections: number;
  /** most unacknowledged QoS 1 publishes per connection */
  window: number;
  clientPrefix: string;
  scenario: Scenario;
  /** periodic messages due before t0 + durationMs are sent */
  durationMs: number;
  /**
   * The fault suite's devices: they reconnect when the broker goes (every 500 ms), never fail
   * on a connection error, and report which periodic messages the broker acknowledged; `done`
   * comes when all are acknowledged or `ackDeadlineMs` after the last one was due.
   */
  tolerant?: { ackDeadlineMs: number };
  /** added to every reading's device time (a device clock that is fast, or slow when negative) */
  clockSkewMs?: number;
}

export type FleetReport =
  | { type: 'ready' }
  | { type: 'started'; t0: number }
  | { type: 'done'; published: number; extra: number; lastAckAt: number; maxLagMs: number; acked?: number; ackedBitmap?: string }
  | { type: 'error'; message: string };

/** A small deterministic hash in [0, 1). */
export function frac(a: number, b: number): number {
  const x = Math.sin(a * 12.9898 + b * 78.233) * 43758.5453;
  return x - Math.floor(x);
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const M_PER_DEG_LAT = 111_320;

/** A GPS fix of device `i` at its periodic message `k`: within 10 m of where the plan puts it, accuracy 5-20 m. */
export function geoFix(d: GeoDevicePlan, i: number, k: number, tsMs: number): Record<string, unknown> {
  const inside = d.breach !== null && k >= d.breach.fromK && k < d.breach.toK;
  const [lon, lat] = inside ? d.breach!.at : d.home;
  const r = 10 * frac(i, k);
  const a = 2 * Math.PI * frac(k, i + 0.5);
  return {
    ts: new Date(tsMs).toISOString(),
    lat: round6(lat + (r * Math.sin(a)) / M_PER_DEG_LAT),
    lon: round6(lon + (r * Math.cos(a)) / (M_PER_DEG_LAT * Math.cos((lat * Math.PI) / 180))),
    accuracy_m: Math.round(5 + 15 * frac(i + 0.25, k)),
    fix: 'gps',
  };
}

/** A status heartbeat (strap open once the tamper has happened), battery 40-100 %. */
export function statusReading(d: AlertsDevicePlan, i: number, k: number, tsMs: number, tamperedBy: boolean): Record<string, unknown> {
  return {
    ts: new Date(tsMs).toISOString(),
    battery_pct: 40 + Math.floor(60 * frac(i, k)),
    strap: tamperedBy ? 'open' : 'ok',
    case: 'ok',
    event: 'heartbeat',
  };
}

export function tamperReading(tsMs: number): Record<string, unknown> {
  return { ts: new Date(tsMs).toISOString(), battery_pct: 80, strap: 'open', case: 'ok', event: 'strap_tamper' };
}

export interface Fleet {
  pid: number;
  ready: Promise<void>;
  /** starts publishing; `started` resolves with t0, `done` when every message is acknowledged */
  go(): { started: Promise<number>; done: Promise<Extract<FleetReport, { type: 'done' }>> };
  stop(): Promise<void>;
}

export function startFleet(job: FleetJob): Fleet {
  const child = fork(fileURLToPath(new URL('./fleet-child.ts', import.meta.url)), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let failed: (e: Error) => void = () => {};
  const failure = new Promise<never>((_, rej) => (failed = rej));
  failure.catch(() => undefined);
  const waiters = new Map<string, (m: FleetReport) => void>();
  const next = <T extends FleetReport['type']>(type: T) =>
    Promise.race([new Promise<Extract<FleetReport, { type: T }>>((res) => waiters.set(type, res as (m: FleetReport) => void)), failure]);
  child.on('message', (m: FleetReport) => {
    if (m.type === 'error') failed(new Error(`fleet publisher: ${m.message}`));
    else waiters.get(m.type)?.(m);
  });
  child.on('exit', (code, signal) => failed(new Error(`fleet publisher exited (code ${code}, signal ${signal})`)));
  const ready = next('ready').then(() => undefined);
  child.send({ type: 'job', job });
  return {
    pid: child.pid!,
    ready,
    go() {
      const started = next('started').then((m) => m.t0);
      const done = next('done');
      child.send({ type: 'go' });
      return { started, done };
    },
    stop: () => stopChild(child, 5000),
  };
}

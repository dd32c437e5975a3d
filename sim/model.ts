import { DateTime } from 'luxon';
import type { AlcoholReading, GpsReading, StatusReading } from '../ingest/telemetry.js';
import type { Stream } from '../signals/streams.js';
import { rngFor, type Rng } from './rng.js';
import { gpsFix, planDay, positionAt, type Position, type Segment } from './track.js';
import { ZONE, type SimDevice } from './fleet.js';
import {
  drinkingEpisode,
  episodeTac,
  irVolts,
  isRising,
  obstructionFor,
  observeTac,
  skinTempC,
  spikeFor,
  type Episode,
  type Obstruction,
  type Spike,
} from './alcohol.js';

/**
 * The fleet simulator's model: who the wearers are, where they go, what their tags measure and
 * when the tags are silent. Pure: every function takes time as epoch milliseconds and derives
 * its randomness from (seed, device, purpose, time), so the same seed gives the same readings
 * whether they are generated live, second by second, or hours later as a backlog.
 */

export { planFleet, ZONE, type FleetOptions, type Kind, type SimDevice, type SubjectBody } from './fleet.js';
export { NOTTINGHAM, TOWN_CENTRE } from './track.js';
export const MAX_BATCH = 1000;
/** A window longer than this is sent as a store-and-forward burst (the tag was silent or new). */
export const BURST_AFTER_MS = 2 * 60_000;
/** A still tag keeps one fix in this many (motion-adaptive sampling, as real tags save battery). */
export const STILL_FIX_EVERY = 5;
export const STATUS_EVERY_MS = 5 * 60_000;
export const ALCOHOL_EVERY_MS = 30 * 60_000;
const ALCOHOL_RISING_EVERY_MS = 5 * 60_000;
const H = 3_600_000;
const STREAMS: Stream[] = ['gps', 'alcohol', 'status'];

export interface LocalDay {
  /** YYYY-MM-DD in Europe/London */
  key: string;
  start: number;
  end: number;
  /** 1 = Monday … 7 = Sunday */
  weekday: number;
}

const dayMemo = new Map<number, LocalDay>();
/** The Europe/London calendar day containing `t` (UK offsets are whole hours, so memoised per hour). */
export function localDay(t: number): LocalDay {
  const hour = Math.floor(t / H);
  let d = dayMemo.get(hour);
  if (!d) {
    const dt = DateTime.fromMillis(t, { zone: ZONE }).startOf('day');
    d = { key: dt.toISODate()!, start: dt.toMillis(), end: dt.plus({ days: 1 }).toMillis(), weekday: dt.weekday };
    if (dayMemo.size > 10_000) dayMemo.clear();
    dayMemo.set(hour, d);
  }
  return d;
}

/** Everything decided once per device and local day. */
export interface DayPlan {
  day: LocalDay;
  episode: Episode | null;
  spike: Spike | null;
  obstruction: Obstruction | null;
  segments: Segment[];
  /** store-and-forward periods [from, to): the tag measures but cannot send */
  silences: Array<[number, number]>;
  strap: { at: number; lenMs: number } | null;
  /** when the wearer puts the tag on charge, null if they forget */
  chargeAt: number | null;
}

const planMemo = new Map<string, DayPlan>();
/** The plan of the local day containing `t` for a device (memoised; a pure function of its inputs). */
export function dayPlan(dev: SimDevice, t: number): DayPlan {
  const day = localDay(t);
  const memoKey = `${dev.key}\u0000${day.key}`;
  const hit = planMemo.get(memoKey);
  if (hit) return hit;
  const r = (what: string): Rng => rngFor(dev.key, what, day.key);
  const episode = drinkingEpisode(dev.drinker, day.start, day.weekday, r('episode'));
  const workday = day.weekday <= 5 && r('work').chance(0.9);
  const sr = r('silence');
  const silences: Array<[number, number]> = [];
  const count = sr.chance(0.45) ? (sr.chance(0.3) ? 2 : 1) : 0;
  for (let i = 0; i < count; i++) {
    const from = day.start + Math.round(sr.range(0, 24) * H);
    const x = sr.next();
    const mins = x < 0.5 ? sr.range(3, 20) : x < 0.85 ? sr.range(20, 120) : sr.range(120, 300);
    silences.push([from, from + Math.round(mins * 60_000)]);
  }
  const tr = r('strap');
  const cr = r('charge');
  const plan: DayPlan = {
    day,
    episode,
    spike: spikeFor(day.start, r('spike')),
    obstruction: dev.kind === 'gps' ? null : obstructionFor(day.start, r('obstruction')),
    segments: planDay(dev.places, day.start, r('plan'), { workday, pubFrom: episode?.start ?? null }),
    silences,
    strap: tr.chance(0.03) ? { at: day.start + Math.round(tr.range(0, 24) * H), lenMs: Math.round(tr.range(2, 15) * 60_000) } : null,
    chargeAt: cr.chance(dev.battery.forgetP) ? null : day.start + Math.round((dev.battery.chargeHour + cr.range(-0.5, 0.5)) * H),
  };
  if (planMemo.size > 20_000) planMemo.clear();
  planMemo.set(memoKey, plan);
  return plan;
}

/** The plans of the day containing `t` and the `n - 1` days before it, newest first. */
function plansBack(dev: SimDevice, t: number, n: number): DayPlan[] {
  const out: DayPlan[] = [dayPlan(dev, t)];
  while (out.length < n) out.push(dayPlan(dev, out[out.length - 1]!.day.start - 1));
  return out;
}

/** Where the wearer is at `t`: today's itinerary, or yesterday's while it runs past midnight. */
export function positionOf(dev: SimDevice, t: number): Position {
  const [today, prev] = plansBack(dev, t, 2) as [DayPlan, DayPlan];
  const last = prev.segments[prev.segments.length - 1];
  return positionAt(last && last.to > t ? prev.segments : today.segments, dev.places.home, t);
}

/** True (noise-free) TAC at `t`, g/dL: drinking from up to two evenings before, plus any spike. */
export function trueTacAt(dev: SimDevice, t: number): number {
  let tac = 0;
  for (const p of plansBack(dev, t, 3)) {
    if (p.episode) tac = Math.max(tac, episodeTac(p.episode, t));
    if (p.spike && t >= p.spike.at && t < p.spike.at + p.spike.lenMs) tac = Math.max(tac, p.spike.level);
  }
  return tac;
}

/** The tag cannot send at `t` (it stores what it measures and sends it later as a burst). */
export function silentAt(dev: SimDevice, t: number): boolean {
  return plansBack(dev, t, 2).some((p) => p.silences.some(([a, b]) => t >= a && t < b));
}

/**
 * Battery at `t`, percent: drains at the device's rate, charges from the evening session until
 * full; a forgotten session lets it run down. The window starts full four days back.
 */
export function batteryAt(dev: SimDevice, t: number): { pct: number; charging: boolean } {
  const b = dev.battery;
  const plans = plansBack(dev, t, 5).reverse();
  let level = 100;
  let since = plans[0]!.day.start;
  for (const p of plans) {
    if (p.chargeAt === null || p.chargeAt > t) continue;
    const atStart = Math.max(0, level - (b.drainPerH * (p.chargeAt - since)) / H);
    const full = p.chargeAt + Math.round(((100 - atStart) / b.chargePerH) * H);
    if (t < full) return { pct: atStart + (b.chargePerH * (t - p.chargeAt)) / H, charging: true };
    level = 100;
    since = full;
  }
  return { pct: Math.max(0, level - (b.drainPerH * (t - since)) / H), charging: false };
}

const dead = (dev: SimDevice, t: number) => {
  const b = batteryAt(dev, t);
  return b.pct <= 0 && !b.charging;
};

/** Visits the jittered sampling grid `phase + k·every (+ up to 20 %)` in (from, to]. */
function grid(key: string, phase: number, every: number, from: number, to: number, visit: (t: number, k: number) => void): void {
  for (let k = Math.floor((from - phase) / every); phase + k * every <= to; k++) {
    const t = Math.round(phase + k * every + rngFor(key, k).next() * 0.2 * every);
    if (t > from && t <= to) visit(t, k);
  }
}

export interface Readings {
  gps: GpsReading[];
  alcohol: AlcoholReading[];
  status: StatusReading[];
}

/**
 * What the device measured in (from, to], oldest first. `rate` is GPS fixes per device per
 * minute while moving; a still tag keeps one in STILL_FIX_EVERY. Alcohol every 30 minutes
 * (every 5 while rising), status every 5 minutes plus tamper and battery events. A flat
 * battery measures nothing.
 */
export function readingsBetween(dev: SimDevice, from: number, to: number, rate: number): Readings {
  const out: Readings = { gps: [], alcohol: [], status: [] };
  const iso = (t: number) => new Date(t).toISOString();
  if (dev.streams.includes('gps')) {
    grid(`${dev.key}/gps`, dev.phaseMs, 60_000 / rate, from, to, (t, k) => {
      const pos = positionOf(dev, t);
      if ((!pos.moving && k % STILL_FIX_EVERY !== 0) || dead(dev, t)) return;
      const fix = gpsFix(pos, t, rngFor(dev.key, 'gps', t));
      if (fix) out.gps.push(fix);
    });
  }
  if (dev.streams.includes('alcohol')) {
    grid(`${dev.key}/alcohol`, dev.phaseMs, ALCOHOL_RISING_EVERY_MS, from, to, (t, k) => {
      const plans = plansBack(dev, t, 3);
      const rising = plans.some((p) => p.episode && isRising(p.episode, t));
      if ((k % (ALCOHOL_EVERY_MS / ALCOHOL_RISING_EVERY_MS) !== 0 && !rising) || dead(dev, t)) return;
      const rng = rngFor(dev.key, 'alcohol', t);
      const obstructed = plans.some((p) => p.obstruction && t >= p.obstruction.from && t < p.obstruction.to);
      const tac = observeTac(trueTacAt(dev, t), rng);
      const temp = skinTempC(dev.drinker, (t - plans[0]!.day.start) / H, rng);
      out.alcohol.push({ ts: iso(t), tac, temp_c: obstructed ? Math.max(19, temp - 1) : temp, ir: irVolts(dev.drinker, dev.key, t, rng, obstructed) });
    });
  }
  if (dev.streams.includes('status')) {
    const straps = plansBack(dev, to, Math.ceil((to - from) / (24 * H)) + 2).map((p) => p.strap);
    const strapOpen = (t: number) => straps.some((s) => s && t >= s.at && t < s.at + s.lenMs);
    const status = (t: number, b: { pct: number; charging: boolean }, event: StatusReading['event']): StatusReading => {
      const rssi = -65 - Math.round(40 * rngFor(dev.key, 'rssi', t).next());
      return { ts: iso(t), battery_pct: Math.round(b.pct), charging: b.charging, strap: strapOpen(t) ? 'open' : 'ok', case: 'ok', rssi_dbm: rssi, event };
    };
    const flat = (b: { pct: number; charging: boolean }) => b.pct <= 0 && !b.charging;
    grid(`${dev.key}/status`, dev.phaseMs, STATUS_EVERY_MS, from, to, (t) => {
      const now = batteryAt(dev, t);
      if (flat(now)) return;
      const before = batteryAt(dev, t - STATUS_EVERY_MS);
      out.status.push(status(t, now, flat(before) ? 'power_on' : now.pct <= 15 && before.pct > 15 ? 'low_battery' : 'heartbeat'));
    });
    for (const s of straps) {
      const b = s && s.at > from && s.at <= to ? batteryAt(dev, s.at) : null;
      if (s && b && !flat(b)) out.status.push(status(s.at, b, 'strap_tamper'));
    }
    out.status.sort((a, b) => a.ts.localeCompare(b.ts));
    out.status = out.status.filter((r, i, all) => i === 0 || all[i - 1]!.ts !== r.ts);
  }
  return out;
}

/**
 * Splits a store-and-forward backlog into MQTT payloads of at most MAX_BATCH readings,
 * sometimes smaller, sometimes shuffled (tags may send what they stored in any order).
 */
export function batchReadings<T>(items: readonly T[], rng: Rng): T[][] {
  const size = rng.chance(0.5) ? MAX_BATCH : rng.int(100, MAX_BATCH);
  const shuffle = rng.chance(0.3);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    const chunk = items.slice(i, i + size);
    if (shuffle) {
      for (let j = chunk.length - 1; j > 0; j--) {
        const x = Math.floor(rng.next() * (j + 1));
        [chunk[j], chunk[x]] = [chunk[x]!, chunk[j]!];
      }
    }
    out.push(chunk);
  }
  return out;
}

export interface OutMessage {
  topic: string;
  stream: Stream;
  /** UTF-8 JSON: one reading, or an array of up to MAX_BATCH */
  payload: string;
  count: number;
  burst: boolean;
}

/**
 * The MQTT messages a device sends for (from, to]: one per reading when live, or, for a window
 * longer than BURST_AFTER_MS (a silent or newly fitted tag), its backlog as batches.
 */
export function messagesBetween(dev: SimDevice, from: number, to: number, rate: number): OutMessage[] {
  const burst = to - from > BURST_AFTER_MS;
  const readings = readingsBetween(dev, from, to, rate);
  const out: OutMessage[] = [];
  for (const stream of STREAMS) {
    const items: readonly object[] = readings[stream];
    const topic = `tags/v1/${dev.id}/${stream}`;
    if (!burst) {
      for (const r of items) out.push({ topic, stream, payload: JSON.stringify(r), count: 1, burst });
      continue;
    }
    for (const chunk of batchReadings(items, rngFor(dev.key, 'burst', stream, to))) {
      out.push({ topic, stream, payload: JSON.stringify(chunk), count: chunk.length, burst });
    }
  }
  return out;
}

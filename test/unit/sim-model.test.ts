import { describe, expect, it } from 'vitest';
import { MAX_PAYLOAD_BYTES, parseMessage } from '../../ingest/telemetry.js';
import {
  BURST_AFTER_MS,
  MAX_BATCH,
  batchReadings,
  batteryAt,
  dayPlan,
  localDay,
  messagesBetween,
  planFleet,
  positionOf,
  readingsBetween,
  silentAt,
  trueTacAt,
  type SimDevice,
} from '../../sim/model.js';
import { createRng } from '../../sim/rng.js';
import { TOWN_CENTRE, distanceM, gpsFix, type Position } from '../../sim/track.js';

// A Friday, two days before the clocks go forward (Sunday 30 March 2025 has 23 hours in London).
const NOW = Date.parse('2025-03-28T12:00:00Z');
const H = 3_600_000;
const DAY = 24 * H;
const RETENTION_DAYS = 2190;

const fleet = planFleet({ seed: 42, devices: 40, prefix: 'u-' });
const withStream = (s: 'gps' | 'alcohol') => fleet.filter((d) => d.streams.includes(s));

/** Contract §4: readings ≥ 0.020 where one reading below does not break the run, two do. */
function tacRuns(readings: Array<{ ts: string; tac: number }>): Array<{ from: number; to: number; n: number }> {
  const runs: Array<{ from: number; to: number; n: number }> = [];
  let cur: { from: number; to: number; n: number } | null = null;
  let below = 0;
  for (const r of readings) {
    const t = Date.parse(r.ts);
    if (r.tac >= 0.02) {
      cur ??= { from: t, to: t, n: 0 };
      cur.to = t;
      cur.n++;
      below = 0;
    } else if (cur && ++below >= 2) {
      runs.push(cur);
      cur = null;
      below = 0;
    }
  }
  if (cur) runs.push(cur);
  return runs;
}

describe('fleet', () => {
  it('is a function of the seed: the same seed gives the same fleet, another seed another', () => {
    expect(planFleet({ seed: 42, devices: 40, prefix: 'u-' })).toEqual(fleet);
    const other = planFleet({ seed: 43, devices: 40, prefix: 'u-' });
    expect(other.map((d) => d.kind)).not.toEqual(fleet.map((d) => d.kind));
  });

  it('mixes kinds, cohorts and RAG ratings, with ids that the API and the broker accept', () => {
    expect(new Set(fleet.map((d) => d.kind))).toEqual(new Set(['gps', 'alcohol', 'combined']));
    expect(new Set(fleet.map((d) => d.subject.cohort))).toEqual(new Set(['fixed', 'flex', 'free']));
    expect(new Set(fleet.map((d) => d.subject.rag))).toEqual(new Set(['red', 'amber', 'green']));
    expect(fleet[0]!.id).toBe('u-tag-0001');
    expect(fleet[39]!.subject.id).toBe('u-subj-0040');
    for (const d of fleet) {
      expect(d.id).toMatch(/^[A-Za-z0-9_-]{3,64}$/);
      expect(d.subject.offender_manager_ids.every((om) => /^om-[1-5]$/.test(om))).toBe(true);
      expect(d.streams).toEqual(d.kind === 'combined' ? ['gps', 'alcohol', 'status'] : [d.kind, 'status']);
    }
  });
});

describe('readings', () => {
  it('are the same generated live, minute by minute, as generated later as one backlog', () => {
    const dev = fleet.find((d) => d.kind === 'combined')!;
    const from = NOW - 3 * H;
    const whole = readingsBetween(dev, from, NOW, 6);
    const pieces = { gps: [] as unknown[], alcohol: [] as unknown[], status: [] as unknown[] };
    for (let t = from; t < NOW; t += 60_000) {
      const r = readingsBetween(dev, t, t + 60_000, 6);
      pieces.gps.push(...r.gps);
      pieces.alcohol.push(...r.alcohol);
      pieces.status.push(...r.status);
    }
    expect(pieces).toEqual(whole);
    expect(whole.gps.length).toBeGreaterThan(30);
    expect(whole.status.length).toBeGreaterThanOrEqual(35); // every 5 minutes, unless the battery is flat
  });

  it('all validate against the ingest parser over two days across the DST change: zero rejections', () => {
    const to = Date.parse('2025-03-31T09:00:00Z');
    let stored = 0;
    for (const dev of fleet.slice(0, 12)) {
      const backlog = messagesBetween(dev, to - 2 * DAY, to - 10 * 60_000, 4);
      const live = Array.from({ length: 600 }, (_, i) => messagesBetween(dev, to - 10 * 60_000 + i * 1000, to - 10 * 60_000 + (i + 1) * 1000, 4)).flat();
      for (const m of [...backlog, ...live]) {
        const parsed = parseMessage(m.topic, Buffer.from(m.payload), to, RETENTION_DAYS);
        expect(parsed.rejections.map((r) => r.reason)).toEqual([]);
        expect(parsed.readings).toHaveLength(m.count);
        stored += parsed.readings.length;
      }
    }
    expect(stored).toBeGreaterThan(10_000);
    expect(localDay(Date.parse('2025-03-30T12:00:00Z'))).toMatchObject({ key: '2025-03-30', end: Date.parse('2025-03-30T23:00:00Z') });
  });
});

describe('GPS', () => {
  const gpsFleet = withStream('gps').slice(0, 10);
  const fixes = gpsFleet.flatMap((dev) => readingsBetween(dev, NOW - DAY, NOW, 4).gps.map((f) => ({ dev, f, pos: positionOf(dev, Date.parse(f.ts)) })));

  it('reports accuracy by sky view: 5-30 m outdoors, 30-120 m indoors, Wi-Fi 100-400 m, cell 500-1500 m', () => {
    const byKind = (pred: (x: (typeof fixes)[number]) => boolean) => fixes.filter(pred).map((x) => x.f.accuracy_m);
    const outdoorGps = byKind((x) => x.pos.env === 'outdoor' && x.f.fix === 'gps');
    const indoorGps = byKind((x) => x.pos.env === 'indoor' && x.f.fix === 'gps');
    const wifi = byKind((x) => x.f.fix === 'wifi');
    const cell = byKind((x) => x.f.fix === 'cell');
    for (const [accs, lo, hi] of [[outdoorGps, 5, 30], [indoorGps, 30, 120], [wifi, 100, 400], [cell, 500, 1500]] as const) {
      expect(accs.length).toBeGreaterThan(5);
      expect(Math.min(...accs)).toBeGreaterThanOrEqual(lo);
      expect(Math.max(...accs)).toBeLessThanOrEqual(hi);
    }
  });

  it('errs by about the accuracy: 68 % of fixes within their radius of the true position', () => {
    const within = fixes.filter((x) => distanceM(x.f, x.pos.at) <= x.f.accuracy_m).length / fixes.length;
    expect(within).toBeGreaterThan(0.62);
    expect(within).toBeLessThan(0.74);
  });

  it('has gaps: indoors about one attempt in five gets no fix', () => {
    const indoor: Position = { at: { lat: 52.95, lon: -1.15 }, env: 'indoor', speed: 0, heading: null, moving: false };
    const rng = createRng(7);
    const none = Array.from({ length: 4000 }, () => gpsFix(indoor, NOW, rng)).filter((f) => f === null).length / 4000;
    expect(none).toBeGreaterThan(0.17);
    expect(none).toBeLessThan(0.23);
  });

  it('walks at 1-1.5 m/s and drives at 8-15 m/s, around Nottingham, and visits the town centre', () => {
    const speeds = { walk: [] as number[], drive: [] as number[] };
    for (const dev of gpsFleet) {
      for (let d = 0; d < 14; d++) {
        for (const s of dayPlan(dev, NOW - d * DAY).segments) if (s.kind === 'move') speeds[s.mode].push(s.speed);
      }
    }
    expect(speeds.walk.length).toBeGreaterThan(10);
    expect(speeds.drive.length).toBeGreaterThan(10);
    expect(Math.min(...speeds.walk)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...speeds.walk)).toBeLessThanOrEqual(1.5);
    expect(Math.min(...speeds.drive)).toBeGreaterThanOrEqual(8);
    expect(Math.max(...speeds.drive)).toBeLessThanOrEqual(15);
    const inTown = fixes.filter((x) => x.f.fix === 'gps' && distanceM(x.pos.at, TOWN_CENTRE) < TOWN_CENTRE.radius_m);
    expect(inTown.length).toBeGreaterThan(20);
    expect(Math.max(...fixes.map((x) => distanceM(x.f, TOWN_CENTRE)))).toBeLessThan(12_000);
  });
});

describe('alcohol', () => {
  const alcoholFleet = withStream('alcohol');
  const days = Array.from({ length: 28 }, (_, i) => NOW - i * DAY);

  it('drinking days have TAC ≥ 0.020 in a run spanning ≥ 60 minutes; values stay within 0..1 and normal wear', () => {
    const episodes: Array<{ dev: SimDevice; start: number }> = [];
    for (const dev of alcoholFleet) for (const t of days) {
      const e = dayPlan(dev, t).episode;
      // a tag whose battery went flat that evening measures nothing (realistic, but not this test's point)
      const flat = e && Array.from({ length: 24 }, (_, i) => batteryAt(dev, e.start + i * 30 * 60_000)).some((b) => b.pct <= 0 && !b.charging);
      if (e && !flat && e.start < NOW - 2 * DAY) episodes.push({ dev, start: e.start });
    }
    expect(episodes.length).toBeGreaterThan(10);
    for (const { dev, start } of episodes.slice(0, 20)) {
      const r = readingsBetween({ ...dev, streams: ['alcohol'] }, start - 2 * H, start + 40 * H, 4).alcohol;
      const best = tacRuns(r).filter((run) => run.n >= 3).map((run) => run.to - run.from);
      expect(Math.max(0, ...best)).toBeGreaterThanOrEqual(60 * 60_000);
      for (const a of r) {
        expect(a.tac).toBeGreaterThanOrEqual(0);
        expect(a.tac).toBeLessThanOrEqual(1);
        expect(a.temp_c).toBeGreaterThanOrEqual(19);
        expect(a.temp_c).toBeLessThanOrEqual(38);
        expect(a.ir).toBeGreaterThanOrEqual(0.7 * 0.25);
        expect(a.ir).toBeLessThanOrEqual(1.8);
      }
      const peak = Math.max(...Array.from({ length: 40 * 12 }, (_, i) => trueTacAt(dev, start + i * 300_000)));
      expect(peak).toBeGreaterThanOrEqual(0.06);
      expect(peak).toBeLessThanOrEqual(0.25);
    }
  });

  it('most days are sober, and a day far from any drinking or spike has no reading at 0.020 or more', () => {
    let drinking = 0;
    let checked = 0;
    for (const dev of alcoholFleet) for (const t of days) if (dayPlan(dev, t).episode) drinking++;
    expect(drinking / (alcoholFleet.length * days.length)).toBeLessThan(0.2);
    for (const dev of alcoholFleet.slice(0, 12)) for (const t of days.slice(3, 17)) {
      const plans = [0, 1, 2].map((k) => dayPlan(dev, t - k * DAY));
      if (plans.some((p) => p.episode || p.spike)) continue;
      checked++;
      const day = plans[0]!.day;
      expect(readingsBetween({ ...dev, streams: ['alcohol'] }, day.start, day.end, 4).alcohol.every((a) => a.tac < 0.02)).toBe(true);
    }
    expect(checked).toBeGreaterThan(50);
  });
});

describe('tag status and store-and-forward', () => {
  const statuses = fleet.map((dev) => readingsBetween({ ...dev, streams: ['status'] }, NOW - 14 * DAY, NOW, 4).status);

  it('battery stays in 0..100, drains off charge and fills on it; forgotten charges bring low_battery events', () => {
    for (const dev of fleet.slice(0, 10)) {
      for (let t = NOW - 7 * DAY; t < NOW; t += 10 * 60_000) {
        const a = batteryAt(dev, t);
        const b = batteryAt(dev, t + 60_000);
        expect(a.pct).toBeGreaterThanOrEqual(0);
        expect(a.pct).toBeLessThanOrEqual(100);
        if (a.charging && b.charging) expect(b.pct).toBeGreaterThan(a.pct);
        if (!a.charging && !b.charging) expect(b.pct).toBeLessThanOrEqual(a.pct);
      }
    }
    const events = statuses.flat().filter((s) => s.event === 'low_battery');
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((s) => s.battery_pct <= 15 && !s.charging)).toBe(true);
  });

  it('raises occasional strap tampers, the strap reported open until refitted', () => {
    const all = statuses.flat();
    const tampers = all.filter((s) => s.event === 'strap_tamper');
    expect(tampers.length).toBeGreaterThan(3);
    expect(tampers.length).toBeLessThan(all.length / 500);
    expect(tampers.every((s) => s.strap === 'open')).toBe(true);
  });

  it('is silent now and then, for minutes to hours, and sends the backlog in batches of at most 1000', () => {
    const dev = fleet.find((d) => d.kind === 'combined')!;
    const silentShare = fleet.slice(0, 10).flatMap((d) => Array.from({ length: 14 * 96 }, (_, i) => silentAt(d, NOW - i * 15 * 60_000)));
    const share = silentShare.filter(Boolean).length / silentShare.length;
    expect(share).toBeGreaterThan(0.005);
    expect(share).toBeLessThan(0.1);
    const burst = messagesBetween(dev, NOW - 26 * H, NOW, 8);
    expect(burst.every((m) => m.burst)).toBe(true);
    const gps = burst.filter((m) => m.stream === 'gps');
    expect(gps.reduce((n, m) => n + m.count, 0)).toBeGreaterThan(MAX_BATCH);
    expect(gps.length).toBeGreaterThan(1);
    for (const m of burst) {
      expect(JSON.parse(m.payload)).toHaveLength(m.count);
      expect(m.count).toBeLessThanOrEqual(MAX_BATCH);
      expect(Buffer.byteLength(m.payload)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    }
    const live = messagesBetween(dev, NOW - BURST_AFTER_MS, NOW, 60);
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((m) => !m.burst && m.count === 1 && !Array.isArray(JSON.parse(m.payload)))).toBe(true);
  });

  it('batches keep every reading once, sometimes out of order', () => {
    const items = Array.from({ length: 2500 }, (_, i) => i);
    let shuffled = 0;
    for (let seed = 0; seed < 20; seed++) {
      const chunks = batchReadings(items, createRng(seed));
      expect(chunks.every((c) => c.length >= 1 && c.length <= MAX_BATCH)).toBe(true);
      expect(chunks.flat().sort((a, b) => a - b)).toEqual(items);
      if (chunks.flat().some((x, i) => x !== i)) shuffled++;
    }
    expect(shuffled).toBeGreaterThan(0);
    expect(shuffled).toBeLessThan(20);
  });
});

import { describe, expect, it } from 'vitest';
import { classifyFix, toShape, type ZoneGeometry } from '../../geofence/geometry.js';
import type { Finding, Fix, ZoneRule } from '../../geofence/breach.js';
import { advanceZones, evaluateFixes, prepareZones, type ZoneStates } from '../../geofence/evaluate.js';
import { enforcedIntervals, type Window } from '../../geofence/schedule.js';

// A circle zone of 300 m round (-1.15, 52.95); points 0 m, 300 m (edge) and ~1000 m north of its centre.
const C = { lon: -1.15, lat: 52.95 };
const IN = { lon: -1.15, lat: 52.95 };
const EDGE = { lon: -1.15, lat: 52.95 + 300 / 111_195 };
const OUT = { lon: -1.15, lat: 52.9589932 };
const T0 = Date.parse('2026-11-10T14:00:00Z');

function rule(over: Partial<ZoneRule> & { geometry?: ZoneGeometry; radius_m?: number } = {}): ZoneRule {
  const { geometry, radius_m, ...rest } = over;
  return {
    id: 'z1',
    kind: 'exclusion',
    shape: toShape(geometry ?? { type: 'Point', coordinates: [C.lon, C.lat] }, geometry ? radius_m : (radius_m ?? 300)),
    grace_ms: 60_000,
    since: T0 - 3600_000,
    timezone: 'Europe/London',
    schedule: null,
    active_from: null,
    active_to: null,
    exceptions: [],
    ...rest,
  };
}

const fix = (ts: number, p: { lon: number; lat: number }, accuracy_m = 10): Fix => ({ ts, ...p, accuracy_m });
const every30s = (from: number, n: number, p: { lon: number; lat: number }, acc = 10) => Array.from({ length: n }, (_, i) => fix(from + i * 30_000, p, acc));
const iso = (ms: number) => new Date(ms).toISOString();
const summary = (fs: Finding[]) => fs.map((f) => `${f.kind}:${f.type}@${iso(f.startedAt)}${f.kind === 'breach_end' ? `-${iso(f.endedAt)}` : ''}`);

function run(r: ZoneRule | ZoneRule[], fixes: Fix[], states: ZoneStates = new Map()) {
  return evaluateFixes(prepareZones(Array.isArray(r) ? r : [r]), states, fixes);
}

describe('error circle classification', () => {
  it.each([
    ['a fix on the edge', EDGE, 10, 'uncertain'],
    ['a fix 15 m inside the edge with 10 m accuracy', { lon: -1.15, lat: 52.95 + 285 / 111_195 }, 10, 'inside'],
    ['the centre with accuracy larger than the zone', IN, 400, 'uncertain'],
    ['far outside with a huge error circle', OUT, 800, 'uncertain'],
    ['far outside', OUT, 10, 'outside'],
  ])('%s is %s', (_n, p, acc, expected) => {
    expect(classifyFix(p.lon, p.lat, acc, rule().shape)).toBe(expected);
  });

  it('treats the hole of a MultiPolygon as outside and its second polygon as inside', () => {
    const sq = (x: number, y: number, d: number) => [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]];
    const shape = toShape({
      type: 'MultiPolygon',
      coordinates: [[sq(-1.2, 52.9, 0.02), sq(-1.195, 52.905, 0.01)], [sq(-1.1, 52.9, 0.01)]],
    });
    expect(classifyFix(-1.19, 52.91, 5, shape)).toBe('outside'); // in the hole
    expect(classifyFix(-1.1975, 52.902, 5, shape)).toBe('inside'); // in the ring between
    expect(classifyFix(-1.095, 52.905, 5, shape)).toBe('inside'); // second polygon
    expect(classifyFix(-1.195, 52.91, 5, shape)).toBe('uncertain'); // on the hole's edge
    expect(classifyFix(-1.15, 52.95, 5, shape)).toBe('outside');
  });
});

describe('exclusion breaches', () => {
  it('a breach split across two batches is one breach from its first inside fix', () => {
    const first = run(rule(), [fix(T0, IN), fix(T0 + 30_000, IN)]);
    expect(first.findings).toEqual([]);
    const second = run(rule(), [fix(T0 + 60_000, IN), fix(T0 + 90_000, IN)], first.states);
    expect(summary(second.findings)).toEqual([`breach:exclusion_breach@${iso(T0)}`]);
    expect(second.findings[0]).toMatchObject({ provenAt: T0 + 60_000, evidence: [{ ts: iso(T0), class: 'inside' }, { ts: iso(T0 + 30_000) }, { ts: iso(T0 + 60_000) }] });
  });

  it('readings out of order are evaluated in device-time order', () => {
    const fixes = [...every30s(T0, 3, OUT), ...every30s(T0 + 90_000, 4, IN), ...every30s(T0 + 210_000, 4, OUT)];
    const shuffled = [fixes[5]!, fixes[0]!, fixes[9]!, fixes[3]!, fixes[1]!, fixes[10]!, fixes[4]!, fixes[2]!, fixes[8]!, fixes[6]!, fixes[7]!];
    expect(summary(run(rule(), shuffled).findings)).toEqual(summary(run(rule(), fixes).findings));
    expect(summary(run(rule(), fixes).findings)).toEqual([`breach:exclusion_breach@${iso(T0 + 90_000)}`, `breach_end:exclusion_breach@${iso(T0 + 90_000)}-${iso(T0 + 210_000)}`]);
  });

  it('one alert per breach however long, and it ends only after outside fixes spanning grace', () => {
    const fixes = [...every30s(T0, 60, IN), fix(T0 + 1_800_000, OUT), fix(T0 + 1_830_000, IN), ...every30s(T0 + 1_860_000, 3, OUT)];
    expect(summary(run(rule(), fixes).findings)).toEqual([`breach:exclusion_breach@${iso(T0)}`, `breach_end:exclusion_breach@${iso(T0)}-${iso(T0 + 1_860_000)}`]);
  });

  it('a zone with a schedule is not enforced outside its windows', () => {
    const schedule: Window[] = [{ days: ['tue'], start: '09:00', end: '17:00' }]; // 2026-11-10 is a Tuesday
    const r = rule({ schedule });
    expect(run(r, every30s(Date.parse('2026-11-10T07:00:00Z'), 10, IN)).findings).toEqual([]);
    expect(summary(run(r, every30s(Date.parse('2026-11-10T09:00:00Z'), 3, IN)).findings)).toEqual(['breach:exclusion_breach@2026-11-10T09:00:00.000Z']);
  });
});

describe('curfews (inclusion zones)', () => {
  const curfew: Window[] = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '19:00', end: '07:00' }];
  const home = (over: Partial<ZoneRule> = {}) => rule({ id: 'home', kind: 'inclusion', radius_m: 100, schedule: curfew, ...over });

  it('a window that starts while the subject is out: the breach starts at the first fix of the window', () => {
    const from = Date.parse('2026-11-10T18:50:00Z'); // GMT: local = UTC
    const r = run(home(), every30s(from, 30, OUT));
    expect(summary(r.findings)).toEqual(['breach:curfew_breach@2026-11-10T19:00:00.000Z']);
    expect(r.findings[0]).toMatchObject({ provenAt: Date.parse('2026-11-10T19:01:00Z') });
  });

  it('coming home ends the breach; the window closing ends one still open', () => {
    const r = run(home(), [...every30s(Date.parse('2026-11-10T19:00:00Z'), 4, OUT), ...every30s(Date.parse('2026-11-10T19:02:00Z'), 3, IN)]);
    expect(summary(r.findings)).toEqual(['breach:curfew_breach@2026-11-10T19:00:00.000Z', 'breach_end:curfew_breach@2026-11-10T19:00:00.000Z-2026-11-10T19:02:00.000Z']);
    const morning = run(home({ since: Date.parse('2026-11-11T06:50:00Z') }), [...every30s(Date.parse('2026-11-11T06:50:00Z'), 5, OUT), fix(Date.parse('2026-11-11T07:10:00Z'), OUT)]);
    expect(summary(morning.findings)).toEqual(['breach:curfew_breach@2026-11-11T06:50:00.000Z', 'breach_end:curfew_breach@2026-11-11T06:50:00.000Z-2026-11-11T07:00:00.000Z']);
  });

  it.each([
    // spring forward (29 March 2026): 19:00 GMT to 07:00 BST is 11 hours
    ['2026-03-28T19:00:00Z', '2026-03-29T06:00:00Z', 11],
    // fall back (25 October 2026): 19:00 BST to 07:00 GMT is 13 hours
    ['2026-10-24T18:00:00Z', '2026-10-25T07:00:00Z', 13],
  ])('on the days the clocks change the window runs %s to %s (%i h)', (start, end, hours) => {
    const r = home();
    const day = Date.parse(start) - 6 * 3600_000;
    const windows = enforcedIntervals(r, day, day + 24 * 3600_000).filter(([s]) => s >= day);
    expect(windows[0]!.map(iso)).toEqual([new Date(start).toISOString(), new Date(end).toISOString()]);
    expect((windows[0]![1] - windows[0]![0]) / 3600_000).toBe(hours);
    // outside for the last half hour of the window: a breach; the half hour after it: none
    expect(summary(run(r, every30s(Date.parse(end) - 1_800_000, 10, OUT)).findings)[0]).toBe(`breach:curfew_breach@${iso(Date.parse(end) - 1_800_000)}`);
    expect(run(r, every30s(Date.parse(end), 10, OUT)).findings).toEqual([]);
  });

  it('an approved absence (exception) is not a breach; the curfew applies again after it', () => {
    const r = home({ exceptions: [{ from: Date.parse('2026-11-10T19:00:00Z'), to: Date.parse('2026-11-10T22:00:00Z') }] });
    expect(run(r, every30s(Date.parse('2026-11-10T19:00:00Z'), 100, OUT)).findings).toEqual([]);
    expect(summary(run(r, every30s(Date.parse('2026-11-10T21:59:00Z'), 5, OUT)).findings)).toEqual(['breach:curfew_breach@2026-11-10T22:00:00.000Z']);
  });

  it('no fix for 15 minutes of the window raises curfew_no_fix, once per gap, from fixes or from the clock', () => {
    const r = home();
    const a = run(home({ since: Date.parse('2026-11-10T20:00:00Z') }), [fix(Date.parse('2026-11-10T20:00:00Z'), IN), fix(Date.parse('2026-11-10T20:20:00Z'), IN)]);
    expect(summary(a.findings)).toEqual(['no_fix:curfew_no_fix@2026-11-10T20:00:00.000Z']);
    // silence since 18:00: the clock finds the gap from the window's start, proven at 19:15
    const zones = prepareZones([r]);
    const before = evaluateFixes(zones, new Map(), [fix(Date.parse('2026-11-10T18:00:00Z'), IN)]);
    expect(advanceZones(zones, before.states, Date.parse('2026-11-10T19:14:00Z')).findings).toEqual([]);
    const tick = advanceZones(zones, before.states, Date.parse('2026-11-10T19:16:00Z'));
    expect(tick.findings).toEqual([{ kind: 'no_fix', type: 'curfew_no_fix', zoneId: 'home', startedAt: Date.parse('2026-11-10T19:00:00Z'), provenAt: Date.parse('2026-11-10T19:15:00Z'), lastFixTs: Date.parse('2026-11-10T18:00:00Z') }]);
    // the next tick and the late fix that ends the gap do not report it again
    const tick2 = advanceZones(zones, tick.states, Date.parse('2026-11-10T19:30:00Z'));
    expect(tick2.findings).toEqual([]);
    expect(evaluateFixes(zones, tick2.states, [fix(Date.parse('2026-11-10T19:40:00Z'), IN)]).findings).toEqual([]);
  });

  it('no fix outside the window is not a curfew matter', () => {
    expect(run(home(), [fix(Date.parse('2026-11-10T08:00:00Z'), OUT), fix(Date.parse('2026-11-10T18:00:00Z'), OUT)]).findings).toEqual([]);
  });
});

describe('many zones', () => {
  it('with 2,000 zones only the touched ones and the curfew are evaluated, with the same result as one zone', () => {
    const many: ZoneRule[] = Array.from({ length: 2000 }, (_, i) =>
      rule({ id: `far-${i}`, geometry: { type: 'Point', coordinates: [-3 + (i % 50) * 0.01, 51 + Math.floor(i / 50) * 0.01] }, radius_m: 200 }),
    );
    const fixes = [...every30s(T0, 3, OUT), ...every30s(T0 + 90_000, 4, IN)];
    const r = run([...many, rule()], fixes);
    expect(summary(r.findings)).toEqual([`breach:exclusion_breach@${iso(T0 + 90_000)}`]);
  });
});

describe('boundary distance in a flat frame', () => {
  it('agrees with turf’s geodesic distance within 5 cm on random UK polygons and fixes', async () => {
    const { pointToPolygonDistance } = await import('@turf/point-to-polygon-distance');
    const { boundaryDistance } = await import('../../geofence/geometry.js');
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let k = 0; k < 300; k++) {
      const cx = -1.2 + rnd() * 0.1;
      const cy = 52.9 + rnd() * 0.1;
      const nv = 20 + Math.floor(rnd() * 180);
      const ring = Array.from({ length: nv }, (_, i) => [cx + (0.002 + rnd() * 0.001) * 1.6 * Math.cos((i / nv) * 2 * Math.PI), cy + (0.002 + rnd() * 0.001) * Math.sin((i / nv) * 2 * Math.PI)]);
      ring.push(ring[0]!);
      const g = { type: 'Polygon' as const, coordinates: [ring] };
      const px = cx + (rnd() - 0.5) * 0.02;
      const py = cy + (rnd() - 0.5) * 0.02;
      const turf = Math.abs(pointToPolygonDistance([px, py], g, { units: 'meters' }));
      expect(Math.abs(turf - boundaryDistance(px, py, g))).toBeLessThan(0.05);
    }
  });
});

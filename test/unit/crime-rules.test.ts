import { describe, expect, it } from 'vitest';
import { crimeParamsVersion, decide, DEFAULT_CRIME_PARAMS, EARTH_RADIUS_M, haversineM, relevantFixes, type CrimeFix, type CrimeWindow } from '../../crime/rules.js';

// A crime at a fixed point; positions north of it along its meridian, so distance = Δlat (rad) × R_earth.
const C = { lat: 52.95, lon: -1.15 };
const T0 = Date.UTC(2026, 10, 30, 22, 0, 0);
const MIN = 60_000;
const P = DEFAULT_CRIME_PARAMS;
const W: CrimeWindow = { ...C, from: T0, to: T0 + 60 * MIN };

/** A fix `m` metres north of the crime, at T0 + `min` minutes. */
function fix(min: number, m: number, accuracy_m = 10, device_id = 'D1'): CrimeFix {
  return { ts: T0 + min * MIN, lat: C.lat + (m / EARTH_RADIUS_M) * (180 / Math.PI), lon: C.lon, accuracy_m, device_id };
}

/** A steady trail: a fix every `every` minutes from `start` to `end` minutes, `m` metres away. */
function trail(start: number, end: number, every: number, m: number, acc = 10): CrimeFix[] {
  const out: CrimeFix[] = [];
  for (let t = start; t <= end; t += every) out.push(fix(t, m, acc));
  return out;
}

describe('haversine', () => {
  it('is Δlat × 6,371,008.8 m along a meridian', () => {
    expect(haversineM(C.lat, C.lon, fix(0, 1000).lat, C.lon)).toBeCloseTo(1000, 6);
  });
  it('one degree of longitude at the equator', () => {
    expect(haversineM(0, 0, 0, 1)).toBeCloseTo((Math.PI / 180) * EARTH_RADIUS_M, 6);
  });
});

describe('crime rules (contract §8), at every boundary', () => {
  it('placed: a fix in W whose whole circle is within R', () => {
    const r = decide([fix(-5, 5000), fix(30, 50, 40), fix(65, 5000)], W, P);
    expect(r.category).toBe('placed');
    expect(r.deciding.map((d) => [d.reason, Math.round(d.distance_m)])).toEqual([['within', 50]]);
  });

  it('a fix whose d + a is exactly R is placed; a millimetre more is possible', () => {
    const f = fix(30, 60);
    const d = haversineM(f.lat, f.lon, C.lat, C.lon);
    expect(decide([fix(-1, 9000), { ...f, accuracy_m: P.radius_m - d }, fix(61, 9000)], W, P).category).toBe('placed');
    expect(decide([fix(-1, 9000), { ...f, accuracy_m: P.radius_m - d + 0.001 }, fix(61, 9000)], W, P).category).toBe('possible');
  });

  it('a fix exactly R away with no error is placed (d + a = R)', () => {
    const f = fix(30, P.radius_m, 0);
    expect(haversineM(f.lat, f.lon, C.lat, C.lon)).toBeCloseTo(P.radius_m, 6);
    const d = haversineM(f.lat, f.lon, C.lat, C.lon);
    const r = decide([{ ...f, accuracy_m: Math.max(0, P.radius_m - d) }], W, P);
    expect(r.category).toBe('placed');
  });

  it('an accuracy larger than R over the crime is possible, never placed', () => {
    const r = decide([fix(-1, 9000), fix(30, 0, 150), fix(61, 9000)], W, P);
    expect(r.category).toBe('possible');
    expect(r.deciding[0]!.reason).toBe('overlaps');
  });

  it('d − a exactly R is possible; beyond is not (from that fix alone)', () => {
    const f = fix(30, 500);
    const d = haversineM(f.lat, f.lon, C.lat, C.lon);
    const far = [fix(-61, 90_000), fix(121, 90_000)]; // over G away in time: no path
    expect(decide([far[0]!, { ...f, accuracy_m: d - P.radius_m }, far[1]!], W, P).category).toBe('possible');
    expect(decide([far[0]!, { ...f, accuracy_m: d - P.radius_m - 0.01 }, far[1]!], W, P).category).toBe('no_data');
  });

  it('fixes exactly at from and at to are in W', () => {
    expect(decide([fix(0, 20)], W, P).category).toBe('placed');
    expect(decide([fix(60, 20)], W, P).category).toBe('placed');
    // a millisecond outside is not in W: the same fix is only a path end
    const before = { ...fix(0, 20), ts: T0 - 1 };
    expect(decide([before], W, P).category).not.toBe('placed');
  });

  it('reachable between two fixes: possible, with both fixes deciding', () => {
    // 1.1 km away at 22:10 and 22:12: 1,000 m beyond R + a at 20 m/s is 50 s each way; 120 s apart
    const r = decide([fix(-2, 90_000), fix(10, 1110), fix(12, 1110), fix(62, 90_000)], W, P);
    expect(r.category).toBe('possible');
    expect(r.deciding.map((d) => [d.reason, d.ts])).toEqual([
      ['reachable', T0 + 10 * MIN],
      ['reachable', T0 + 12 * MIN],
    ]);
  });

  it('not reachable when the pair is too far for the time between them', () => {
    // 50 s each way needs 100 s; 60 s apart is too little
    const r = decide([...trail(-1, 61, 1, 1110)], W, P);
    expect(r.category).toBe('ruled_out');
  });

  it('reachability counts only the part of the pair inside W', () => {
    // pair 21:58 → 22:00 both 1.11 km away: C reachable only around 21:59, before W
    const w = { ...W, from: T0 + 1 * MIN + 1 };
    const r = decide([fix(-1, 1110), fix(1, 1110), ...trail(2, 62, 1, 9000)], w, P);
    expect(r.category).toBe('ruled_out');
  });

  it('a gap of exactly G is a path and covered; a millisecond more is neither', () => {
    const G = P.max_gap_s * 1000;
    const pair = (gap: number) => [fix(-1, 30_000), fix(5, 36_000), { ...fix(5, 36_000), ts: T0 + 5 * MIN + gap }, fix(120, 30_000)];
    // 36 km away: reachable within a 60-minute gap (2 × 1,800 s of travel at 20 m/s = 72 km)
    expect(decide(pair(G), W, P).category).toBe('possible');
    expect(decide(pair(G + 1), W, P).category).toBe('no_data');
  });

  it('covered and far: ruled_out; coverage reported', () => {
    const r = decide(trail(-5, 65, 5, 20_000), W, P);
    expect(r.category).toBe('ruled_out');
    expect(r.deciding).toEqual([]);
    expect(r.coverage).toEqual({ before: true, after: true, fixes_in_window: 13, longest_gap_s: 300, covered: true });
  });

  it('no fix at or before from, or none at or after to: no_data', () => {
    expect(decide(trail(1, 65, 5, 20_000), W, P).category).toBe('no_data');
    expect(decide(trail(-5, 59, 4, 20_000), W, P).category).toBe('no_data');
    expect(decide([], W, P)).toEqual({ category: 'no_data', deciding: [], coverage: { before: false, after: false, fixes_in_window: 0, longest_gap_s: 0, covered: false } });
  });

  it('a gap over G overlapping W is not covered; one that ends exactly at from is outside W', () => {
    const gap = [fix(-70, 80_000), fix(-5, 80_000), fix(65, 80_000)]; // 70 minutes from 22:55 to 23:05
    expect(decide(gap, W, P).category).toBe('no_data');
    const ends = [fix(-130, 80_000), fix(0, 80_000), ...trail(5, 65, 5, 80_000)];
    expect(decide(ends, W, P).category).toBe('ruled_out');
  });

  it('two devices merged: the one that places decides, the other adds coverage', () => {
    const d1 = trail(-5, 30, 5, 20_000);
    const d2 = [fix(35, 30, 10, 'D2'), fix(40, 20_000, 10, 'D2'), fix(66, 20_000, 10, 'D2')];
    const r = decide([...d1, ...d2].sort((a, b) => a.ts - b.ts), W, P);
    expect(r.category).toBe('placed');
    expect(r.deciding.map((d) => d.device_id)).toEqual(['D2']);
  });

  it('relevantFixes keeps W and the nearest fix on each side', () => {
    const fixes = trail(-30, 90, 10, 1000);
    expect(relevantFixes(fixes, W).map((f) => (f.ts - T0) / MIN)).toEqual([-10, 0, 10, 20, 30, 40, 50, 60, 70]);
  });

  it('fixes further than G outside W never change the answer', () => {
    const fixes = trail(-200, 300, 7, 1500);
    const bounded = fixes.filter((f) => f.ts >= W.from - P.max_gap_s * 1000 && f.ts <= W.to + P.max_gap_s * 1000);
    expect(decide(bounded, W, P)).toEqual(decide(fixes, W, P));
  });

  it('the parameter version is stable and changes with the parameters', () => {
    expect(crimeParamsVersion(P)).toBe(crimeParamsVersion({ max_gap_s: 3600, speed_mps: 20, radius_m: 100 }));
    expect(crimeParamsVersion({ ...P, radius_m: 150 })).not.toBe(crimeParamsVersion(P));
  });
});

import { describe, expect, it } from 'vitest';
import { indexTrails, matchCrimes, trailsFrom, type MatchCrime } from '../../crime/match.js';
import { decide, DEFAULT_CRIME_PARAMS, type CrimeFix, type CrimeParams } from '../../crime/rules.js';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = Date.UTC(2026, 10, 30, 12);
const MIN = 60_000;

/** Subjects wandering a 6 km town with gaps, jumps and big errors; crimes anywhere in it. */
function town(seed: number, subjects: number, crimes: number) {
  const r = rng(seed);
  const trails = new Map<string, CrimeFix[]>();
  for (let s = 0; s < subjects; s++) {
    const fixes: CrimeFix[] = [];
    let lat = 52.93 + r() * 0.05;
    let lon = -1.2 + r() * 0.09;
    for (let t = T0 + r() * 30 * MIN; t < T0 + 24 * 60 * MIN; t += MIN * (r() < 0.05 ? 20 + r() * 90 : 0.5 + r() * 4)) {
      lat += (r() - 0.5) * 0.002;
      lon += (r() - 0.5) * 0.003;
      const acc = r() < 0.1 ? 50 + r() * 800 : 3 + r() * 30;
      fixes.push({ ts: Math.round(t), lat, lon, accuracy_m: acc, device_id: r() < 0.2 ? `D${s}b` : `D${s}` });
    }
    trails.set(`S${String(s).padStart(3, '0')}`, fixes);
  }
  const list: MatchCrime[] = [];
  for (let c = 0; c < crimes; c++) {
    const from = T0 + Math.round(r() * 20 * 60) * MIN;
    list.push({ id: `C${c}`, from, to: from + Math.round(r() * 12 * 60) * MIN, lat: 52.93 + r() * 0.05, lon: -1.2 + r() * 0.09 });
  }
  return { trails, crimes: list };
}

function bruteForce(trails: Map<string, CrimeFix[]>, crimes: MatchCrime[], p: CrimeParams) {
  const out: Array<[string, string, string]> = [];
  for (const c of crimes) {
    for (const s of [...trails.keys()].sort()) {
      const fixes = [...trails.get(s)!].sort((a, b) => a.ts - b.ts || (a.device_id < b.device_id ? -1 : 1));
      const d = decide(fixes, c, p);
      if (d.category === 'placed' || d.category === 'possible') out.push([c.id, s, d.category]);
    }
  }
  return out;
}

describe('matching a batch through the R-tree', () => {
  it.each([1, 2, 3])('finds exactly what deciding every subject finds (town %i)', (seed) => {
    const { trails, crimes } = town(seed, 60, 80);
    for (const p of [DEFAULT_CRIME_PARAMS, { radius_m: 250, speed_mps: 5, max_gap_s: 1800 }]) {
      const got = matchCrimes(indexTrails(trailsFrom(trails), p), crimes).map((m) => [m.crime_id, m.subject_id, m.decision.category]);
      const want = bruteForce(trails, crimes, p);
      expect(want.length).toBeGreaterThan(20);
      expect(got).toEqual(want);
    }
  });

  it('gives the same decision as decide() on the whole trail', () => {
    const { trails, crimes } = town(7, 20, 30);
    const ix = indexTrails(trailsFrom(trails), DEFAULT_CRIME_PARAMS);
    for (const m of matchCrimes(ix, crimes)) {
      const c = crimes.find((x) => x.id === m.crime_id)!;
      const fixes = [...trails.get(m.subject_id)!].sort((a, b) => a.ts - b.ts || (a.device_id < b.device_id ? -1 : 1));
      expect(m.decision).toEqual(decide(fixes, c, DEFAULT_CRIME_PARAMS));
    }
  });
});

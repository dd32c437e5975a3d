import { createHash } from 'node:crypto';

/**
 * Crime matching rules of contract §8. Pure: fixes and the crime come in, the category and the
 * fixes that decide it come out. Times are epoch milliseconds (UTC), positions WGS84 degrees,
 * distances metres.
 */

export interface CrimeParams {
  /** m: radius R around the crime location */
  radius_m: number;
  /** m/s: speed V a person could move between fixes */
  speed_mps: number;
  /** s: longest gap G between consecutive fixes that still counts as covered or as a path */
  max_gap_s: number;
}

export const DEFAULT_CRIME_PARAMS: CrimeParams = { radius_m: 100, speed_mps: 20, max_gap_s: 3600 };

/** Stable id of a parameter set: the first 16 hex digits of the SHA-256 of its canonical JSON. */
export function crimeParamsVersion(p: CrimeParams): string {
  const canonical = JSON.stringify(Object.keys(p).sort().map((k) => [k, p[k as keyof CrimeParams]]));
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** m: the sphere of contract §8 */
export const EARTH_RADIUS_M = 6_371_008.8;

/** Great-circle distance in metres between two WGS84 points (degrees), haversine on a sphere of 6,371,008.8 m. */
export function haversineM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

export interface CrimeFix {
  /** epoch ms, device time */
  ts: number;
  lat: number;
  lon: number;
  /** m, 68 % radius */
  accuracy_m: number;
  device_id: string;
}

export interface CrimeWindow {
  /** epoch ms, inclusive */
  from: number;
  /** epoch ms, inclusive */
  to: number;
  lat: number;
  lon: number;
}

export type Category = 'placed' | 'possible' | 'ruled_out' | 'no_data';

export interface DecidingFix extends CrimeFix {
  /** m: haversine distance to the crime */
  distance_m: number;
  /** why this fix decides: its circle within R, its circle touching R, or one end of a reachable pair */
  reason: 'within' | 'overlaps' | 'reachable';
}

/** How well fixes cover W, judged from the fixes in [from − G, to + G]. */
export interface Coverage {
  /** a fix in [from − G, from] */
  before: boolean;
  /** a fix in [to, to + G] */
  after: boolean;
  /** fixes inside the window */
  fixes_in_window: number;
  /** s: the longest gap between consecutive fixes whose interval overlaps the window (0 with none) */
  longest_gap_s: number;
  covered: boolean;
}

export interface CrimeDecision {
  category: Category;
  /** the fixes that decide a `placed` or `possible`; empty otherwise */
  deciding: DecidingFix[];
  coverage: Coverage;
}

/**
 * The fixes the rules need, out of a subject's fixes sorted by time: those in W and the nearest
 * before and after. Fixes more than G before `from` or after `to` never change the answer (a pair
 * with such a fix is over G apart: not a path, and an uncovered gap either way), so callers may
 * load only [from − G, to + G].
 */
export function relevantFixes(sorted: readonly CrimeFix[], w: CrimeWindow): CrimeFix[] {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]!.ts < w.from) lo = mid + 1;
    else hi = mid;
  }
  const start = Math.max(0, lo - 1);
  let end = lo;
  while (end < sorted.length && sorted[end]!.ts <= w.to) end++;
  return sorted.slice(start, Math.min(sorted.length, end + 1));
}

/** How one fix in W stands: its whole circle within R of C, its circle touching R, or neither. */
export function fixClass(distanceM: number, accuracyM: number, p: CrimeParams): 'within' | 'overlaps' | null {
  if (distanceM + accuracyM <= p.radius_m) return 'within';
  if (distanceM - accuracyM <= p.radius_m) return 'overlaps';
  return null;
}

/**
 * Whether C was reachable during W between consecutive fixes at t1 < t2 (ms), at most G apart:
 * with e = max(0, d − a − R), some t in W ∩ [t1, t2] has t − t1 ≥ e1 / V and t2 − t ≥ e2 / V.
 */
export function pairReachable(t1: number, d1: number, a1: number, t2: number, d2: number, a2: number, w: CrimeWindow, p: CrimeParams): boolean {
  if (!(t1 < t2) || t2 - t1 > p.max_gap_s * 1000) return false;
  const e1 = Math.max(0, d1 - a1 - p.radius_m);
  const e2 = Math.max(0, d2 - a2 - p.radius_m);
  const earliest = Math.max(w.from, t1, t1 + (e1 / p.speed_mps) * 1000);
  const latest = Math.min(w.to, t2, t2 - (e2 / p.speed_mps) * 1000);
  return earliest <= latest;
}

/**
 * Decides one subject for one crime (contract §8). `all`: the subject's fixes inside its
 * fittings, all devices merged, sorted by device time (ties by device id), at least those in
 * [from − G, to + G]; others are ignored, which never changes the category.
 */
export function decide(all: readonly CrimeFix[], w: CrimeWindow, p: CrimeParams): CrimeDecision {
  const G = p.max_gap_s * 1000;
  // only [from − G, to + G] can matter (see relevantFixes): cut there so every caller gets the same coverage
  const fixes = relevantFixes(all, w).filter((f) => f.ts >= w.from - G && f.ts <= w.to + G);
  const dist = fixes.map((f) => haversineM(f.lat, f.lon, w.lat, w.lon));
  const deciding = (i: number, reason: DecidingFix['reason']): DecidingFix => ({ ...fixes[i]!, distance_m: dist[i]!, reason });
  const placed: DecidingFix[] = [];
  const overlapping: DecidingFix[] = [];
  for (let i = 0; i < fixes.length; i++) {
    if (fixes[i]!.ts < w.from || fixes[i]!.ts > w.to) continue;
    const c = fixClass(dist[i]!, fixes[i]!.accuracy_m, p);
    if (c === 'within') placed.push(deciding(i, c));
    else if (c === 'overlaps') overlapping.push(deciding(i, c));
  }
  const coverage = coverageOf(fixes.map((f) => f.ts), w, G);
  if (placed.length) return { category: 'placed', deciding: placed, coverage };
  if (overlapping.length) return { category: 'possible', deciding: overlapping, coverage };
  for (let i = 0; i + 1 < fixes.length; i++) {
    const [f1, f2] = [fixes[i]!, fixes[i + 1]!];
    if (pairReachable(f1.ts, dist[i]!, f1.accuracy_m, f2.ts, dist[i + 1]!, f2.accuracy_m, w, p)) {
      return { category: 'possible', deciding: [deciding(i, 'reachable'), deciding(i + 1, 'reachable')], coverage };
    }
  }
  return { category: coverage.covered ? 'ruled_out' : 'no_data', deciding: [], coverage };
}

/**
 * Whether fix times (ms, sorted, already cut to [from − G, to + G]) cover W: one at or before
 * `from`, one at or after `to`, no gap over G overlapping W.
 */
export function coverageOf(ts: ArrayLike<number>, w: CrimeWindow, gapMs: number): Coverage {
  let before = false;
  let after = false;
  let inWindow = 0;
  let longest = 0;
  let wideGap = false;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    if (t <= w.from) before = true;
    if (t >= w.to) after = true;
    if (t >= w.from && t <= w.to) inWindow++;
    if (i + 1 < ts.length) {
      const t2 = ts[i + 1]!;
      if (t < w.to && t2 > w.from) {
        longest = Math.max(longest, t2 - t);
        if (t2 - t > gapMs) wideGap = true;
      }
    }
  }
  return { before, after, fixes_in_window: inWindow, longest_gap_s: longest / 1000, covered: before && after && !wideGap };
}

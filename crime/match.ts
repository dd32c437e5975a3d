import Flatbush from 'flatbush';
import { coverageOf, EARTH_RADIUS_M, fixClass, haversineM, pairReachable, type CrimeDecision, type CrimeFix, type CrimeParams, type CrimeWindow, type DecidingFix } from './rules.js';

/**
 * Matches a batch of crimes against many subjects' trails (contract §8). Pure: the trails come in
 * columnar (typed arrays, so 17 million fixes fit without 17 million objects), the results out.
 * An R-tree per hour of device time prunes: fix i gets the box of the circle around it of radius
 * a_i + R + V·Δ_i (Δ_i: the gap to the subject's next fix when at most G, else 0). A crime can be
 * placed or possible for a subject only through a fix whose circle holds C (d − a ≤ R ⇒ inside;
 * a reachable pair (i, i+1) needs d_i − a_i − R ≤ V·Δ_i ⇒ inside), so only the subjects of the
 * fixes whose boxes hold C and whose [t_i, t_i + Δ_i] meets W are decided, by `decide` itself.
 */

export interface Trails {
  /** subject ids; fixes of subject k are rows start[k] .. start[k+1]-1, sorted by ts */
  subjects: string[];
  start: Int32Array;
  /** epoch ms */
  ts: Float64Array;
  lat: Float64Array;
  lon: Float64Array;
  /** m */
  accuracy: Float64Array;
  /** index into `devices` */
  device: Int32Array;
  devices: string[];
  /** epoch ms: each fix's receipt time, when loaded from the database */
  received?: Float64Array;
}

export interface MatchCrime extends CrimeWindow {
  id: string;
}

export interface Match {
  crime_id: string;
  subject_id: string;
  decision: CrimeDecision;
}

/** ms: one R-tree per this much device time */
const SLOT_MS = 3_600_000;
const DEG = 180 / Math.PI;

export interface TrailIndex {
  trails: Trails;
  params: CrimeParams;
  /** slot number → R-tree over its fixes, and those fixes' row numbers */
  slots: Map<number, { tree: Flatbush; rows: Int32Array }>;
  /** ms: the gap Δ_i of each row (0 when over G or last) */
  gap: Float64Array;
  subjectOf: Int32Array;
}

/** Builds the per-hour R-trees of a trail set for the given parameters. */
export function indexTrails(trails: Trails, params: CrimeParams): TrailIndex {
  const n = trails.ts.length;
  const G = params.max_gap_s * 1000;
  const gap = new Float64Array(n);
  const subjectOf = new Int32Array(n);
  for (let k = 0; k < trails.subjects.length; k++) {
    const end = trails.start[k + 1]!;
    for (let i = trails.start[k]!; i < end; i++) {
      subjectOf[i] = k;
      const d = i + 1 < end ? trails.ts[i + 1]! - trails.ts[i]! : Infinity;
      gap[i] = d <= G ? d : 0;
    }
  }
  const bySlot = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const s = Math.floor(trails.ts[i]! / SLOT_MS);
    let list = bySlot.get(s);
    if (!list) bySlot.set(s, (list = []));
    list.push(i);
  }
  const slots = new Map<number, { tree: Flatbush; rows: Int32Array }>();
  for (const [s, list] of bySlot) {
    const rows = Int32Array.from(list);
    const tree = new Flatbush(rows.length);
    for (const i of rows) {
      const r = trails.accuracy[i]! + params.radius_m + (params.speed_mps * gap[i]!) / 1000;
      const dLat = (r / EARTH_RADIUS_M) * DEG;
      const lat = trails.lat[i]!;
      // degrees of longitude for r metres, widened at the pole-ward edge of the box
      const cos = Math.max(1e-6, Math.cos((Math.min(89, Math.abs(lat) + dLat) * Math.PI) / 180));
      const dLon = Math.min(180, dLat / cos);
      tree.add(trails.lon[i]! - dLon, lat - dLat, trails.lon[i]! + dLon, lat + dLat);
    }
    tree.finish();
    slots.set(s, { tree, rows });
  }
  return { trails, params, slots, gap, subjectOf };
}

/** The rows that could decide a placed or possible for one crime, by subject index, each list ascending. */
export function candidates(ix: TrailIndex, c: CrimeWindow): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const G = ix.params.max_gap_s * 1000;
  const first = Math.floor((c.from - G) / SLOT_MS);
  const last = Math.floor(c.to / SLOT_MS);
  for (let s = first; s <= last; s++) {
    const slot = ix.slots.get(s);
    if (!slot) continue;
    for (const j of slot.tree.search(c.lon, c.lat, c.lon, c.lat)) {
      const i = slot.rows[j]!;
      const t = ix.trails.ts[i]!;
      if (!(t <= c.to && t + ix.gap[i]! >= c.from)) continue;
      const k = ix.subjectOf[i]!;
      let rows = out.get(k);
      if (!rows) out.set(k, (rows = []));
      rows.push(i);
    }
  }
  for (const rows of out.values()) rows.sort((a, b) => a - b);
  return out;
}

/** First row of subject k at or after time t (ms), or the subject's end. */
function firstAtOrAfter(t: Trails, k: number, time: number): number {
  let lo = t.start[k]!;
  let hi = t.start[k + 1]!;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t.ts[mid]! < time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `decide` for subject k from its candidate rows: the same rules (fixClass, pairReachable,
 * coverageOf) on the same fixes — the nearest before W, those in W and the nearest after, cut to
 * [from − G, to + G] — touching only the rows that can decide. Tested equal to `decide`.
 */
export function decideRows(ix: TrailIndex, k: number, rows: readonly number[], w: CrimeWindow): CrimeDecision {
  const t = ix.trails;
  const p = ix.params;
  const G = p.max_gap_s * 1000;
  const end = t.start[k + 1]!;
  let lo = firstAtOrAfter(t, k, w.from);
  if (lo > t.start[k]!) lo--;
  let hi = lo;
  while (hi < end && t.ts[hi]! <= w.to) hi++;
  if (hi < end) hi++;
  while (lo < hi && t.ts[lo]! < w.from - G) lo++;
  while (hi > lo && t.ts[hi - 1]! > w.to + G) hi--;
  const coverage = coverageOf(t.ts.subarray(lo, hi), w, G);
  const dist = (i: number) => haversineM(t.lat[i]!, t.lon[i]!, w.lat, w.lon);
  const fix = (i: number, reason: DecidingFix['reason']): DecidingFix => ({
    ts: t.ts[i]!,
    lat: t.lat[i]!,
    lon: t.lon[i]!,
    accuracy_m: t.accuracy[i]!,
    device_id: t.devices[t.device[i]!]!,
    distance_m: dist(i),
    reason,
  });
  const placed: DecidingFix[] = [];
  const overlapping: DecidingFix[] = [];
  for (const i of rows) {
    if (i < lo || i >= hi || t.ts[i]! < w.from || t.ts[i]! > w.to) continue;
    const c = fixClass(dist(i), t.accuracy[i]!, p);
    if (c === 'within') placed.push(fix(i, c));
    else if (c === 'overlaps') overlapping.push(fix(i, c));
  }
  if (placed.length) return { category: 'placed', deciding: placed, coverage };
  if (overlapping.length) return { category: 'possible', deciding: overlapping, coverage };
  for (const i of rows) {
    if (i < lo || i + 1 >= hi) continue;
    if (pairReachable(t.ts[i]!, dist(i), t.accuracy[i]!, t.ts[i + 1]!, dist(i + 1), t.accuracy[i + 1]!, w, p)) {
      return { category: 'possible', deciding: [fix(i, 'reachable'), fix(i + 1, 'reachable')], coverage };
    }
  }
  return { category: coverage.covered ? 'ruled_out' : 'no_data', deciding: [], coverage };
}

/** Every `placed` and `possible` (crime, subject) of a batch, crimes in the given order, subjects by id. */
export function matchCrimes(ix: TrailIndex, crimes: readonly MatchCrime[]): Match[] {
  const out: Match[] = [];
  for (const c of crimes) {
    const found: Match[] = [];
    for (const [k, rows] of candidates(ix, c)) {
      const decision = decideRows(ix, k, rows, c);
      if (decision.category === 'placed' || decision.category === 'possible') found.push({ crime_id: c.id, subject_id: ix.trails.subjects[k]!, decision });
    }
    found.sort((a, b) => (a.subject_id < b.subject_id ? -1 : a.subject_id > b.subject_id ? 1 : 0));
    out.push(...found);
  }
  return out;
}

/** Builds a `Trails` from per-subject fix lists (tests and small batches). */
export function trailsFrom(bySubject: ReadonlyMap<string, readonly CrimeFix[]>): Trails {
  const subjects = [...bySubject.keys()].sort();
  const n = subjects.reduce((s, k) => s + bySubject.get(k)!.length, 0);
  const t: Trails = {
    subjects,
    start: new Int32Array(subjects.length + 1),
    ts: new Float64Array(n),
    lat: new Float64Array(n),
    lon: new Float64Array(n),
    accuracy: new Float64Array(n),
    device: new Int32Array(n),
    devices: [],
  };
  const deviceIx = new Map<string, number>();
  let i = 0;
  subjects.forEach((s, k) => {
    t.start[k] = i;
    const fixes = [...bySubject.get(s)!].sort((a, b) => a.ts - b.ts || (a.device_id < b.device_id ? -1 : 1));
    for (const f of fixes) {
      let d = deviceIx.get(f.device_id);
      if (d === undefined) deviceIx.set(f.device_id, (d = t.devices.push(f.device_id) - 1));
      t.ts[i] = f.ts;
      t.lat[i] = f.lat;
      t.lon[i] = f.lon;
      t.accuracy[i] = f.accuracy_m;
      t.device[i] = d;
      i++;
    }
  });
  t.start[subjects.length] = i;
  return t;
}

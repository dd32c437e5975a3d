import type { Polygon, Position } from 'geojson';
import { pointToPolygonDistance } from '@turf/point-to-polygon-distance';
import { point } from '@turf/helpers';
import type pg from 'pg';
import { circleBbox, classifyFix } from '../../geofence/geometry.js';
import type { Fix, ZoneRule, ZoneState } from '../../geofence/breach.js';
import { evaluateFixes, prepareZones } from '../../geofence/evaluate.js';
import { loadRules } from '../../geofence/zones.repo.js';
import { loadStates, saveStates } from '../../geofence/states.repo.js';
import { classifyFlat, signedDistanceFlat } from './flat.js';
import type { TownZone } from './town.js';

/**
 * Phases (a), (b) and (e) of bench:geofence: the pure core over many zones, the naive
 * all-zones turf test, and the fixed cost a worker job pays for a subject with that many zones.
 * Times are from performance.now(), single-threaded.
 */

export interface FixCounts {
  inside: number;
  uncertain: number;
}

export interface CoreResult {
  prepareMs: number;
  /** (a) evaluateFixes, one call per fix (the live worker's batch), states carried per track */
  liveUsPerFix: number;
  findings: number;
  /** evaluateFixes called with no fix, with the states (a) left: its per-call fixed cost */
  perCallUs: number;
  /** the largest states map a track left (used by (e)) */
  states: Map<string, ZoneState>;
  /** (a') R-tree candidates classified with classifyFix */
  geomUsPerFix: number;
  candidatesPerFix: number;
  perFix: FixCounts[];
  /** (a*) the same candidates, flat-frame distance (what-if) */
  flatUsPerFix: number;
  flatDisagree: number;
  flatMaxDiffM: number;
}

/** (a), (a') and (a*) over `tracks` (each one subject's fixes in time order). */
export function runCore(rules: ZoneRule[], tracks: Fix[][]): CoreResult {
  let t = performance.now();
  const zones = prepareZones(rules);
  const prepareMs = performance.now() - t;
  const fixes = tracks.flat();

  // warm-up (JIT), not measured
  evaluateFixes(zones, new Map(), fixes.slice(0, 200));
  t = performance.now();
  let findings = 0;
  let lastStates = new Map<string, ZoneState>();
  for (const track of tracks) {
    let states = new Map<string, ZoneState>();
    for (const f of track) {
      const r = evaluateFixes(zones, states, [f]);
      states = r.states;
      findings += r.findings.length;
    }
    if (states.size > lastStates.size) lastStates = states;
  }
  const liveUsPerFix = ((performance.now() - t) * 1000) / fixes.length;

  t = performance.now();
  const calls = 2000;
  for (let i = 0; i < calls; i++) evaluateFixes(zones, lastStates, []);
  const perCallUs = ((performance.now() - t) * 1000) / calls;

  const candidates = fixes.map((f) => zones.index!.search(...circleBbox(f.lon, f.lat, f.accuracy_m)));
  t = performance.now();
  const perFix = fixes.map((f) => {
    const c: FixCounts = { inside: 0, uncertain: 0 };
    for (const i of zones.index!.search(...circleBbox(f.lon, f.lat, f.accuracy_m))) {
      const cls = classifyFix(f.lon, f.lat, f.accuracy_m, rules[i]!.shape);
      if (cls !== 'outside') c[cls]++;
    }
    return c;
  });
  const geomUsPerFix = ((performance.now() - t) * 1000) / fixes.length;
  const candidatesPerFix = candidates.reduce((n, c) => n + c.length, 0) / fixes.length;

  const ringsOf = (i: number) => (rules[i]!.shape.geometry as Polygon).coordinates as Position[][];
  t = performance.now();
  let flatDisagree = 0;
  fixes.forEach((f, k) => {
    const c: FixCounts = { inside: 0, uncertain: 0 };
    for (const i of zones.index!.search(...circleBbox(f.lon, f.lat, f.accuracy_m))) {
      const cls = classifyFlat(f.lon, f.lat, f.accuracy_m, ringsOf(i));
      if (cls !== 'outside') c[cls]++;
    }
    if (c.inside !== perFix[k]!.inside || c.uncertain !== perFix[k]!.uncertain) flatDisagree++;
  });
  const flatUsPerFix = ((performance.now() - t) * 1000) / fixes.length;

  // how far the flat distance is from turf's geodesic one, on a sample of candidate pairs
  let flatMaxDiffM = 0;
  for (let k = 0; k < fixes.length; k += 7) {
    const f = fixes[k]!;
    for (const i of candidates[k]!) {
      const geo = pointToPolygonDistance(point([f.lon, f.lat]), rules[i]!.shape.geometry as Polygon, { units: 'meters' });
      flatMaxDiffM = Math.max(flatMaxDiffM, Math.abs(geo - signedDistanceFlat(f.lon, f.lat, ringsOf(i))));
    }
  }
  return {
    prepareMs,
    liveUsPerFix,
    findings,
    perCallUs,
    states: lastStates,
    geomUsPerFix,
    candidatesPerFix,
    perFix,
    flatUsPerFix,
    flatDisagree,
    flatMaxDiffM,
  };
}

export interface NaiveResult {
  msPerFix: number;
  fixes: number;
  perFix: FixCounts[];
}

/** (b) classifyFix against every zone, no index. */
export function runNaive(rules: ZoneRule[], fixes: Fix[]): NaiveResult {
  classifyFix(fixes[0]!.lon, fixes[0]!.lat, fixes[0]!.accuracy_m, rules[0]!.shape); // warm-up
  const t = performance.now();
  const perFix = fixes.map((f) => {
    const c: FixCounts = { inside: 0, uncertain: 0 };
    for (const r of rules) {
      const cls = classifyFix(f.lon, f.lat, f.accuracy_m, r.shape);
      if (cls !== 'outside') c[cls]++;
    }
    return c;
  });
  return { msPerFix: (performance.now() - t) / fixes.length, fixes: fixes.length, perFix };
}

/** How many fixes two per-fix count lists agree on (same inside and uncertain counts). */
export function agreement(a: FixCounts[], b: FixCounts[]): number {
  let same = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] && b[i] && a[i]!.inside === b[i]!.inside && a[i]!.uncertain === b[i]!.uncertain) same++;
  return same;
}

export interface JobCostResult {
  zones: number;
  loadRulesMs: number;
  prepareMs: number;
  loadStatesMs: number;
  saveStatesMs: number;
  states: number;
}

/**
 * (e) What evaluateDeviceGeofence pays on every job whatever its fixes, for one subject with
 * all the zones in the tagwatch schema: loadRules (SQL + jsonb + toShape), prepareZones (the
 * R-tree), and loading and saving zone states (one per zone, the upper bound). Median of 5.
 */
export async function runJobCost(pool: pg.Pool, zones: TownZone[], states: Map<string, ZoneState>): Promise<JobCostResult> {
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag) VALUES ('bench-shared', 'bench', 'fixed', 'amber')`);
  for (let i = 0; i < zones.length; i += 1000) {
    await pool.query(
      `INSERT INTO zones (subject_id, kind, name, geometry, grace_s, created_by)
       SELECT 'bench-shared', 'exclusion', 'z' || o, g::jsonb, 60, 'bench' FROM unnest($1::text[]) WITH ORDINALITY AS t(g, o)`,
      [zones.slice(i, i + 1000).map((z) => JSON.stringify({ type: 'Polygon', coordinates: [z.ring] }))],
    );
  }
  const median = async (f: () => Promise<unknown> | unknown) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await f();
      times.push(performance.now() - t);
    }
    return times.sort((a, b) => a - b)[2]!;
  };
  let rules: ZoneRule[] = [];
  const loadRulesMs = await median(async () => (rules = await loadRules(pool, 'bench-shared')));
  const prepareMs = await median(() => prepareZones(rules));
  // worst case: a state row for every zone (states are never pruned: every zone a subject's
  // fixes came near keeps one), filled with the states (a) produced, cycled
  const sample = [...states.values()];
  if (sample.length === 0) throw new Error('(e) needs the zone states of (a)');
  const keyed = new Map(rules.map((r, i) => [r.id, sample[i % sample.length]!]));
  const client = await pool.connect();
  try {
    const saveStatesMs = await median(() => saveStates(client, 'bench-shared', keyed));
    const loadStatesMs = await median(() => loadStates(client, 'bench-shared'));
    return { zones: rules.length, loadRulesMs, prepareMs, loadStatesMs, saveStatesMs, states: keyed.size };
  } finally {
    client.release();
  }
}

import Flatbush from 'flatbush';
import { circleBbox } from './geometry.js';
import { advanceZone, initialState, isIdle, stepZone, type Finding, type Fix, type ZoneRule, type ZoneState } from './breach.js';

/**
 * Evaluates a subject's fixes against all its zones (pure). A static R-tree (flatbush) over the
 * zones' bounding boxes finds the zones a fix's error circle can touch; every other zone is
 * known to be wholly outside without any geometry. Only zones where "outside" can change
 * something are stepped for such a fix: curfews (inclusion zones) and exclusion zones with a
 * run or a breach under way. So the cost per fix stays flat with thousands of zones.
 */

export interface PreparedZones {
  rules: ZoneRule[];
  index: Flatbush | null;
  inclusion: number[];
  /** zone id -> position in `rules` */
  position: Map<string, number>;
}

export function prepareZones(rules: ZoneRule[]): PreparedZones {
  let index: Flatbush | null = null;
  if (rules.length > 0) {
    index = new Flatbush(rules.length);
    for (const r of rules) index.add(...r.shape.bbox);
    index.finish();
  }
  return { rules, index, inclusion: rules.flatMap((r, i) => (r.kind === 'inclusion' ? [i] : [])), position: new Map(rules.map((r, i) => [r.id, i])) };
}

export type ZoneStates = Map<string, ZoneState>;

/**
 * Applies fixes in device-time order (sorted here; ties keep their order) and returns the new
 * states and the findings in the order they were proven.
 */
export function evaluateFixes(zones: PreparedZones, states: ZoneStates, fixes: Fix[]): { states: ZoneStates; findings: Finding[] } {
  const out: ZoneStates = new Map(states);
  const findings: Finding[] = [];
  const active = new Set<number>();
  // only zones with a state can be under way: the cost does not grow with the number of zones
  for (const [id, s] of out) {
    const i = zones.position.get(id);
    if (i !== undefined && zones.rules[i]!.kind === 'exclusion' && !isIdle(s)) active.add(i);
  }
  const sorted = [...fixes].sort((a, b) => a.ts - b.ts);
  for (const fix of sorted) {
    const touched = new Set<number>(zones.index ? zones.index.search(...circleBbox(fix.lon, fix.lat, fix.accuracy_m)) : []);
    const step = (i: number, known?: 'outside') => {
      const rule = zones.rules[i]!;
      const r = stepZone(rule, out.get(rule.id) ?? initialState(), fix, known);
      out.set(rule.id, r.state);
      findings.push(...r.findings);
      if (rule.kind === 'exclusion') {
        if (isIdle(r.state)) active.delete(i);
        else active.add(i);
      }
    };
    for (const i of touched) step(i);
    for (const i of zones.inclusion) if (!touched.has(i)) step(i, 'outside');
    for (const i of [...active]) if (!touched.has(i)) step(i, 'outside');
  }
  return { states: out, findings };
}

/** Moves every zone to server time `now` (curfew no-fix, enforcement that ended). */
export function advanceZones(zones: PreparedZones, states: ZoneStates, now: number): { states: ZoneStates; findings: Finding[] } {
  const out: ZoneStates = new Map(states);
  const findings: Finding[] = [];
  for (const rule of zones.rules) {
    const s = out.get(rule.id) ?? initialState();
    if (rule.kind === 'exclusion' && isIdle(s)) continue;
    const r = advanceZone(rule, s, now);
    out.set(rule.id, r.state);
    findings.push(...r.findings);
  }
  return { states: out, findings };
}

import { classifyFix, type FixClass, type Shape } from './geometry.js';
import { enforcedIntervals, isEnforced, type Enforcement } from './schedule.js';

/**
 * The breach state machine of one (subject, zone) pair (contract §3). Pure: fixes and `now`
 * come in as parameters, times are epoch milliseconds of device time (fixes) or server time
 * (`advanceZone`'s `now`).
 *
 * Exclusion: inside fixes spanning at least `grace` with no outside fix between start a breach
 * (started at the first inside fix); outside fixes spanning `grace` end it. Inclusion (curfew):
 * the same with outside and inside swapped, only while the zone is enforced, plus
 * `curfew_no_fix` when no fix at all arrives for 15 minutes of an enforced window. Uncertain
 * fixes neither start nor end anything. A breach open when enforcement stops ends there.
 */

export const NO_FIX_MS = 15 * 60_000;
const MAX_EVIDENCE = 50;

export interface ZoneRule extends Enforcement {
  id: string;
  kind: 'exclusion' | 'inclusion';
  shape: Shape;
  grace_ms: number;
  /** for curfew_no_fix: absence counts from here while no fix has been seen (zone creation or fitting) */
  since: number;
}

export interface Fix {
  ts: number;
  lon: number;
  lat: number;
  accuracy_m: number;
}

export interface EvidenceFix {
  ts: string;
  lon: number;
  lat: number;
  accuracy_m: number;
  class: FixClass;
}

export interface ZoneState {
  lastTs: number | null;
  runStart: number | null;
  runEvidence: EvidenceFix[];
  breachStart: number | null;
  clearStart: number | null;
  /** start of the latest no-fix gap already reported (gaps are reported in time order) */
  noFixReported: number | null;
}

export type BreachType = 'exclusion_breach' | 'curfew_breach';

export type Finding =
  | { kind: 'breach'; type: BreachType; zoneId: string; startedAt: number; provenAt: number; evidence: EvidenceFix[] }
  | { kind: 'breach_end'; type: BreachType; zoneId: string; startedAt: number; endedAt: number }
  | { kind: 'no_fix'; type: 'curfew_no_fix'; zoneId: string; startedAt: number; provenAt: number; lastFixTs: number | null };

export function initialState(): ZoneState {
  return { lastTs: null, runStart: null, runEvidence: [], breachStart: null, clearStart: null, noFixReported: null };
}

/** True when the state holds nothing that an outside fix could change (an idle exclusion zone). */
export function isIdle(s: ZoneState): boolean {
  return s.runStart === null && s.breachStart === null;
}

/** False for a state that is the same as none (an idle exclusion zone): such states are not stored. */
export function worthStoring(kind: ZoneRule['kind'], s: ZoneState): boolean {
  return !(kind === 'exclusion' && isIdle(s));
}

const typeOf = (rule: ZoneRule): BreachType => (rule.kind === 'exclusion' ? 'exclusion_breach' : 'curfew_breach');

/**
 * Applies one fix (device-time order) to a zone's state. `cls` may be given when the caller
 * already knows the class (a fix whose circle's bbox misses the zone is outside).
 */
export function stepZone(rule: ZoneRule, state: ZoneState, fix: Fix, cls?: FixClass): { state: ZoneState; findings: Finding[] } {
  const findings: Finding[] = [];
  let s = { ...state };
  const from = s.lastTs ?? rule.since;
  if (rule.kind === 'inclusion') s = noFixBetween(rule, s, from, fix.ts, findings);
  // Enforcement must hold without a break since the last fix, or the run starts over.
  if (s.lastTs !== null && (s.runStart !== null || s.breachStart !== null)) {
    const iv = enforcedIntervals(rule, s.lastTs, fix.ts + 1);
    const continuous = iv.length === 1 && iv[0]![0] <= s.lastTs && iv[0]![1] >= fix.ts + 1;
    if (!continuous) s = stopEnforcement(rule, s, iv.length ? iv[0]![1] : s.lastTs, findings);
  }
  if (!isEnforced(rule, fix.ts)) {
    s.lastTs = fix.ts;
    return { state: s, findings };
  }
  const c = cls ?? classifyFix(fix.lon, fix.lat, fix.accuracy_m, rule.shape);
  const violating = rule.kind === 'exclusion' ? c === 'inside' : c === 'outside';
  const clearing = rule.kind === 'exclusion' ? c === 'outside' : c === 'inside';
  if (s.breachStart === null) {
    if (violating) {
      s.runStart ??= fix.ts;
      s.runEvidence = s.runEvidence.length < MAX_EVIDENCE ? [...s.runEvidence, evidenceOf(fix, c)] : s.runEvidence;
      if (fix.ts - s.runStart >= rule.grace_ms) {
        findings.push({ kind: 'breach', type: typeOf(rule), zoneId: rule.id, startedAt: s.runStart, provenAt: fix.ts, evidence: s.runEvidence });
        s.breachStart = s.runStart;
        s.clearStart = null;
      }
    } else if (clearing) {
      s.runStart = null;
      s.runEvidence = [];
    }
  } else if (clearing) {
    s.clearStart ??= fix.ts;
    if (fix.ts - s.clearStart >= rule.grace_ms) {
      findings.push({ kind: 'breach_end', type: typeOf(rule), zoneId: rule.id, startedAt: s.breachStart, endedAt: s.clearStart });
      s = { ...s, breachStart: null, clearStart: null, runStart: null, runEvidence: [] };
    }
  } else if (violating) {
    s.clearStart = null;
  }
  s.lastTs = fix.ts;
  return { state: s, findings };
}

/**
 * Moves a zone's state to server time `now` without a fix: reports a curfew window with no fix
 * for 15 minutes, and ends a breach whose enforcement has stopped.
 */
export function advanceZone(rule: ZoneRule, state: ZoneState, now: number): { state: ZoneState; findings: Finding[] } {
  const findings: Finding[] = [];
  let s = { ...state };
  const from = s.lastTs ?? rule.since;
  if (rule.kind === 'inclusion') s = noFixBetween(rule, s, from, now, findings);
  if ((s.breachStart !== null || s.runStart !== null) && s.lastTs !== null && !isEnforced(rule, now)) {
    const iv = enforcedIntervals(rule, s.lastTs, now);
    s = stopEnforcement(rule, s, iv.length ? iv[0]![1] : s.lastTs, findings);
  }
  return { state: s, findings };
}

function stopEnforcement(rule: ZoneRule, s: ZoneState, endedAt: number, findings: Finding[]): ZoneState {
  if (s.breachStart !== null) {
    findings.push({ kind: 'breach_end', type: typeOf(rule), zoneId: rule.id, startedAt: s.breachStart, endedAt });
  }
  return { ...s, breachStart: null, clearStart: null, runStart: null, runEvidence: [] };
}

/** Reports each enforced stretch of (from, to) with no fix for 15 minutes, once per gap. */
function noFixBetween(rule: ZoneRule, s: ZoneState, from: number, to: number, findings: Finding[]): ZoneState {
  if (to - from < NO_FIX_MS) return s;
  let out = s;
  for (const [start, end] of enforcedIntervals(rule, from, to)) {
    if (end - start >= NO_FIX_MS && (out.noFixReported === null || start > out.noFixReported)) {
      findings.push({ kind: 'no_fix', type: 'curfew_no_fix', zoneId: rule.id, startedAt: start, provenAt: start + NO_FIX_MS, lastFixTs: s.lastTs });
      out = { ...out, noFixReported: start };
    }
  }
  return out;
}

function evidenceOf(f: Fix, c: FixClass): EvidenceFix {
  return { ts: new Date(f.ts).toISOString(), lon: f.lon, lat: f.lat, accuracy_m: f.accuracy_m, class: c };
}

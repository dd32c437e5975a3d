import type { Finding, Fix, ZoneRule } from './breach.js';
import { advanceZones, evaluateFixes, prepareZones, type ZoneStates } from './evaluate.js';

export interface ReevaluatedBreach {
  type: Finding['type'];
  zone_id: string;
  started_at: string;
  proven_at: string;
  ended_at: string | null;
  evidence_fixes: number;
}

export interface ReevaluationReport {
  from: string;
  to: string;
  zones: number;
  fixes: number;
  breaches: ReevaluatedBreach[];
}

/**
 * What the given zones find in the fixes of [from, to) (epoch ms), starting from a clear state
 * at `from`: the same core as live evaluation, so the report is reproducible from the stored
 * readings and the zone parameters. Pure. Fixes are added in device-time order, in as many
 * chunks as the caller likes (the states are carried from one to the next), so a long period
 * is streamed rather than held in memory at once.
 */
export function createReevaluation(rules: ZoneRule[], from: number, to: number) {
  const zones = prepareZones(rules.map((r) => ({ ...r, since: Math.max(r.since, from) })));
  let states: ZoneStates = new Map();
  let fixes = 0;
  const breaches: ReevaluatedBreach[] = [];
  const open = new Map<string, ReevaluatedBreach>();
  const report = (findings: Finding[]) => {
    for (const f of findings) {
      if (f.kind === 'breach' || f.kind === 'no_fix') {
        const b: ReevaluatedBreach = {
          type: f.type,
          zone_id: f.zoneId,
          started_at: new Date(f.startedAt).toISOString(),
          proven_at: new Date(f.provenAt).toISOString(),
          ended_at: null,
          evidence_fixes: f.kind === 'breach' ? f.evidence.length : 0,
        };
        breaches.push(b);
        if (f.kind === 'breach') open.set(`${f.zoneId}|${f.startedAt}`, b);
      } else {
        const b = open.get(`${f.zoneId}|${f.startedAt}`);
        if (b) b.ended_at = new Date(f.endedAt).toISOString();
      }
    }
  };
  return {
    /** the next fixes, later in device time than any added before */
    add(chunk: Fix[]): void {
      fixes += chunk.length;
      const ran = evaluateFixes(zones, states, chunk.filter((f) => f.ts >= from && f.ts < to));
      states = ran.states;
      report(ran.findings);
    },
    finish(): ReevaluationReport {
      report(advanceZones(zones, states, to).findings);
      return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), zones: rules.length, fixes, breaches };
    },
  };
}

/** The whole period in one pass (fixes in any order). */
export function reevaluate(rules: ZoneRule[], fixes: Fix[], from: number, to: number): ReevaluationReport {
  const r = createReevaluation(rules, from, to);
  r.add(fixes);
  return r.finish();
}

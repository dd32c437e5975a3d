import type { Finding, Fix, ZoneRule } from './breach.js';
import { advanceZones, evaluateFixes, prepareZones } from './evaluate.js';

export interface ReevaluatedBreach {
  type: Finding['type'];
  zone_id: string;
  started_at: string;
  proven_at: string;
  ended_at: string | null;
  evidence_fixes: number;
}

/**
 * What the given zones find in the fixes of [from, to) (epoch ms), starting from a clear state
 * at `from`: the same core as live evaluation, so the report is reproducible from the stored
 * readings and the zone parameters. Pure.
 */
export function reevaluate(rules: ZoneRule[], fixes: Fix[], from: number, to: number) {
  const zones = prepareZones(rules.map((r) => ({ ...r, since: Math.max(r.since, from) })));
  const ran = evaluateFixes(zones, new Map(), fixes.filter((f) => f.ts >= from && f.ts < to));
  const end = advanceZones(zones, ran.states, to);
  const breaches: ReevaluatedBreach[] = [];
  const open = new Map<string, ReevaluatedBreach>();
  for (const f of [...ran.findings, ...end.findings]) {
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
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), zones: rules.length, fixes: fixes.length, breaches };
}

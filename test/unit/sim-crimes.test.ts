import { describe, expect, it } from 'vitest';
import { planFleet, readingsBetween } from '../../sim/model.js';
import { planCrimes } from '../../sim/crimes.js';
import { parseCrimeCsv } from '../../crime/batch.js';
import { gridToWgs84 } from '../../crime/grid.js';
import { indexTrails, matchCrimes, trailsFrom } from '../../crime/match.js';
import { DEFAULT_CRIME_PARAMS, type CrimeFix } from '../../crime/rules.js';

/**
 * The simulator's ground truth against the matching (issue 13): crimes committed by simulated
 * subjects at their TRUE positions (the model's, not their reported fixes) must all be placed or
 * possible with the default parameters; the other subjects found are false leads, reported.
 * The crimes go through the CSV (half on the National Grid) as a force would send them.
 */

const H = 3_600_000;
const TO = Date.parse('2025-03-27T23:00:00Z');
const FROM = TO - 24 * H;
const RATE = 1; // fixes a minute while moving, as the benchmark

describe('simulated crimes with known ground truth', () => {
  it('places or finds possible every committed crime, and reports the false-lead rate', () => {
    const fleet = planFleet({ seed: 7, devices: 60, prefix: 'g-' });
    const plan = planCrimes(fleet, { seed: 7, count: 200, from: FROM, to: TO, rate: RATE });
    const bySubject = new Map<string, CrimeFix[]>();
    for (const dev of fleet.filter((d) => d.kind !== 'alcohol')) {
      const fixes = readingsBetween(dev, FROM - 2 * H, TO + 2 * H, RATE).gps.map((f) => ({ ts: Date.parse(f.ts), lat: f.lat, lon: f.lon, accuracy_m: f.accuracy_m, device_id: dev.id }));
      bySubject.set(dev.subject.id, fixes);
    }
    const parsed = parseCrimeCsv(Buffer.from(plan.csv), TO + H);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.errors).toEqual([]);
    const crimes = parsed.rows.map((r) => ({
      id: r.crime_ref,
      from: r.from,
      to: r.to,
      ...(r.location.datum === 'OSGB36' ? gridToWgs84(r.location.easting, r.location.northing) : { lat: r.location.lat, lon: r.location.lon }),
    }));
    const matches = matchCrimes(indexTrails(trailsFrom(bySubject), DEFAULT_CRIME_PARAMS), crimes);
    const found = new Map<string, Map<string, string>>();
    for (const m of matches) {
      if (!found.has(m.crime_id)) found.set(m.crime_id, new Map());
      found.get(m.crime_id)!.set(m.subject_id, m.decision.category);
    }
    const committed = plan.truth.filter((t) => t.committed_by);
    const missed = committed.filter((t) => !found.get(t.crime_ref)?.has(t.committed_by!));
    const placed = committed.filter((t) => found.get(t.crime_ref)?.get(t.committed_by!) === 'placed').length;
    let falseLeads = 0;
    let crimesWithFalseLead = 0;
    for (const t of plan.truth) {
      const others = [...(found.get(t.crime_ref)?.keys() ?? [])].filter((s) => s !== t.committed_by).length;
      falseLeads += others;
      if (others) crimesWithFalseLead++;
    }
    const subjects = bySubject.size;
    const rate = falseLeads / (plan.truth.length * subjects);
    console.log(
      `simulated crimes: ${plan.truth.length} crimes, ${committed.length} committed by ${subjects} GPS subjects; ` +
        `committed found ${committed.length - missed.length}/${committed.length} (${placed} placed, ${committed.length - missed.length - placed} possible); ` +
        `false leads ${falseLeads} (${(falseLeads / plan.truth.length).toFixed(2)} per crime, ${crimesWithFalseLead} crimes with any, ` +
        `${(100 * rate).toFixed(2)} % of crime-subject pairs); nearest reported fix to the true position (median) ` +
        `${median(committed.map((t) => t.nearest_fix_m).filter((x): x is number => x !== null))} m`,
    );
    const byReason = { placed: 0, overlaps: 0, reachable: 0 };
    for (const m of matches) {
      if (plan.truth.find((t) => t.crime_ref === m.crime_id)!.committed_by === m.subject_id) continue;
      byReason[m.decision.category === 'placed' ? 'placed' : m.decision.deciding[0]!.reason === 'reachable' ? 'reachable' : 'overlaps']++;
    }
    console.log(`false leads by what decided them: ${JSON.stringify(byReason)}`);
    // sensitivity (reported, not asserted): a walking speed instead of 20 m/s
    for (const speed of [5, 1.5]) {
      const slow = matchCrimes(indexTrails(trailsFrom(bySubject), { ...DEFAULT_CRIME_PARAMS, speed_mps: speed }), crimes);
      const hit = committed.filter((t) => slow.some((m) => m.crime_id === t.crime_ref && m.subject_id === t.committed_by)).length;
      const other = slow.filter((m) => plan.truth.find((t) => t.crime_ref === m.crime_id)!.committed_by !== m.subject_id).length;
      console.log(`with V = ${speed} m/s: committed found ${hit}/${committed.length}, false leads ${(other / plan.truth.length).toFixed(2)} per crime`);
    }
    expect(committed.length).toBe(40);
    expect(missed.map((t) => t.crime_ref)).toEqual([]);
    // the truth is not circular: true positions are away from the reported fixes
    expect(committed.some((t) => (t.nearest_fix_m ?? 0) > 5)).toBe(true);
  });
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

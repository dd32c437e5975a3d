import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toShape } from '../../geofence/geometry.js';
import { initialState, worthStoring, type Finding, type Fix, type ZoneRule, type ZoneState } from '../../geofence/breach.js';
import { evaluateFixes, prepareZones, type ZoneStates } from '../../geofence/evaluate.js';
import { createReevaluation, reevaluate } from '../../geofence/reevaluate.js';

/**
 * Issue 9, findings 1 and 9: a backlog (or a re-evaluation) taken in chunks must decide exactly
 * what one pass over all the fixes decides. Between chunks the evaluation job stores the states
 * and loads them back (zone_states: JSON, idle exclusion states dropped); `carry` is that round trip.
 */

const T0 = Date.parse('2026-11-10T14:00:00Z');
const base = { grace_ms: 60_000, since: T0 - 3600_000, timezone: 'Europe/London', active_from: null, active_to: null, exceptions: [] };
const RULES: ZoneRule[] = [
  { ...base, id: 'circle', kind: 'exclusion', shape: toShape({ type: 'Point', coordinates: [-1.15, 52.95] }, 300), schedule: null },
  {
    ...base,
    id: 'square',
    kind: 'exclusion',
    grace_ms: 0,
    shape: toShape({ type: 'Polygon', coordinates: [[[-1.16, 52.948], [-1.154, 52.948], [-1.154, 52.952], [-1.16, 52.952], [-1.16, 52.948]]] }),
    schedule: null,
  },
  {
    ...base,
    id: 'home',
    kind: 'inclusion',
    shape: toShape({ type: 'Point', coordinates: [-1.152, 52.951] }, 400),
    schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '14:10', end: '15:30' }],
  },
];

/** Fixes in device-time order, distinct times (the readings' key), scattered over the zones and around them. */
const fixesArb = fc
  .array(
    fc.record({
      gap: fc.oneof(fc.integer({ min: 1_000, max: 90_000 }), fc.integer({ min: 1_000, max: 20 * 60_000 })),
      at: fc.oneof(
        fc.record({ lon: fc.double({ min: -1.165, max: -1.14, noNaN: true }), lat: fc.double({ min: 52.944, max: 52.958, noNaN: true }) }),
        fc.record({ lon: fc.double({ min: -1.1505, max: -1.1495, noNaN: true }), lat: fc.double({ min: 52.9497, max: 52.9503, noNaN: true }) }),
      ),
      accuracy_m: fc.integer({ min: 3, max: 300 }),
    }),
    { minLength: 0, maxLength: 120 },
  )
  .map((xs) => {
    let ts = T0;
    return xs.map(({ gap, at, accuracy_m }): Fix => ({ ts: (ts += gap), ...at, accuracy_m }));
  });

/** What zone_states holds and gives back: idle exclusion states dropped, JSON, defaults filled. */
function carry(states: ZoneStates): ZoneStates {
  const kind = new Map(RULES.map((r) => [r.id, r.kind]));
  return new Map(
    [...states].filter(([z, s]) => worthStoring(kind.get(z)!, s)).map(([z, s]) => [z, { ...initialState(), ...(JSON.parse(JSON.stringify(s)) as ZoneState) }]),
  );
}

function inChunks(fixes: Fix[], size: number): { states: ZoneStates; findings: Finding[] } {
  const zones = prepareZones(RULES);
  let states: ZoneStates = new Map();
  const findings: Finding[] = [];
  for (let i = 0; i < fixes.length; i += size) {
    const r = evaluateFixes(zones, states, fixes.slice(i, i + size));
    findings.push(...r.findings);
    states = carry(r.states);
  }
  return { states, findings };
}

describe('evaluation in chunks', () => {
  it('finds what one pass finds, and leaves the same stored states, for any chunk size', () => {
    fc.assert(
      fc.property(fixesArb, fc.integer({ min: 1, max: 25 }), (fixes, size) => {
        const whole = evaluateFixes(prepareZones(RULES), new Map(), fixes);
        const chunked = inChunks(fixes, size);
        expect(chunked.findings).toEqual(whole.findings);
        expect(chunked.states).toEqual(carry(whole.states));
      }),
      { numRuns: 400 },
    );
  });

  it('the scenarios it draws do raise breaches of every kind (the property is not vacuous)', () => {
    const kinds = new Set<string>();
    fc.assert(
      fc.property(fixesArb, (fixes) => {
        for (const f of evaluateFixes(prepareZones(RULES), new Map(), fixes).findings) kinds.add(`${f.kind}:${f.zoneId}`);
      }),
      { numRuns: 200, seed: 9 },
    );
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['breach:circle', 'breach:home', 'breach:square', 'breach_end:circle', 'breach_end:home', 'breach_end:square', 'no_fix:home']));
  });

  it('a re-evaluation fed in chunks reports what one pass reports', () => {
    fc.assert(
      fc.property(fixesArb, fc.integer({ min: 1, max: 25 }), (fixes, size) => {
        const to = T0 + 3 * 86400_000;
        const whole = reevaluate(RULES, fixes, T0, to);
        const chunks = Array.from({ length: Math.ceil(fixes.length / size) }, (_, i) => fixes.slice(i * size, (i + 1) * size));
        expect(reevaluateChunks(RULES, chunks, T0, to)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});

function reevaluateChunks(rules: ZoneRule[], chunks: Fix[][], from: number, to: number) {
  const r = createReevaluation(rules, from, to);
  for (const c of chunks) r.add(c);
  return r.finish();
}

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classifyFix, toShape, type ZoneGeometry } from '../../geofence/geometry.js';
import type { Fix, ZoneRule } from '../../geofence/breach.js';
import { evaluateFixes, prepareZones } from '../../geofence/evaluate.js';

interface VectorCase {
  name: string;
  zone: { geometry: ZoneGeometry; properties: { kind: 'exclusion'; radius_m?: number; grace_s: number } };
  fixes: Array<{ ts: string; lat: number; lon: number; accuracy_m: number; expect: string }>;
  exclusion_breaches: Array<{ started_at: string }>;
}

const file = fileURLToPath(new URL('../fixtures/vectors/geofence.json', import.meta.url));
const cases = (JSON.parse(readFileSync(file, 'utf8')) as { cases: VectorCase[] }).cases;

function ruleOf(c: VectorCase): ZoneRule {
  return {
    id: 'z',
    kind: c.zone.properties.kind,
    shape: toShape(c.zone.geometry, c.zone.properties.radius_m),
    grace_ms: c.zone.properties.grace_s * 1000,
    since: 0,
    timezone: 'Europe/London',
    schedule: null,
    active_from: null,
    active_to: null,
    exceptions: [],
  };
}

const fixesOf = (c: VectorCase): Fix[] => c.fixes.map((f) => ({ ts: Date.parse(f.ts), lon: f.lon, lat: f.lat, accuracy_m: f.accuracy_m }));

describe('contract §3 test vectors (test/fixtures/vectors/geofence.json)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThanOrEqual(8));
  describe.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    it('classifies every fix as expected', () => {
      const shape = ruleOf(c).shape;
      expect(c.fixes.map((f) => classifyFix(f.lon, f.lat, f.accuracy_m, shape))).toEqual(c.fixes.map((f) => f.expect));
    });
    it('finds exactly the expected breaches, fed as one batch', () => {
      const r = evaluateFixes(prepareZones([ruleOf(c)]), new Map(), fixesOf(c));
      const starts = r.findings.filter((f) => f.kind === 'breach').map((f) => new Date(f.startedAt).toISOString());
      expect(starts).toEqual(c.exclusion_breaches.map((b) => new Date(b.started_at).toISOString()));
    });
    it('finds the same breaches fed one fix at a time in device order', () => {
      const zones = prepareZones([ruleOf(c)]);
      let states = new Map();
      const starts: string[] = [];
      for (const f of [...fixesOf(c)].sort((a, b) => a.ts - b.ts)) {
        const r = evaluateFixes(zones, states, [f]);
        states = r.states;
        for (const x of r.findings) if (x.kind === 'breach') starts.push(new Date(x.startedAt).toISOString());
      }
      expect(starts).toEqual(c.exclusion_breaches.map((b) => new Date(b.started_at).toISOString()));
    });
  });
});

import { describe, expect, it } from 'vitest';
import { layout, projectM, roundLength } from '../../console/evidence.diagram.js';
import { companions } from '../../console/evidence.files.js';
import type { PackData } from '../../console/evidence.files.js';

/** The evidence diagram's scale (console/evidence.diagram.ts) and the companions' determinism. */

const fix = (n: number, lat: number, lon: number, accuracy_m: number) => ({ n, ts: `2026-12-01T10:0${n}:00.000Z`, received_at: null, lat, lon, accuracy_m, class: 'inside', device_id: 'D', distance_m: null });
const data: PackData = { reference: 'r', subject: { id: 'S', display_name: 'N' }, zones: [], target: { label: 'C', lat: 52.95, lon: -1.15, radius_m: 100 }, fixes: [fix(1, 52.95, -1.15, 10), fix(2, 52.951, -1.149, 30)] };

describe('evidence diagram', () => {
  it('projects metres east and north about the centre (1° of latitude = 111,195 m on the sphere)', () => {
    expect(projectM(52, -1, 53, -1).y).toBeCloseTo(111_194.9, 0);
    expect(projectM(60, 0, 60, 1).x).toBeCloseTo(111_194.9 / 2, 0); // cos 60° = 0.5
  });

  it('draws one scale on both axes: ground distances and radii map to page points by the same factor, and the scale bar says so', () => {
    const L = layout(data, { left: 0, top: 0, width: 500, height: 400 });
    const a = L.toPage(52.95, -1.15);
    const b = L.toPage(52.951, -1.149);
    // the same projection (about the diagram's centre) on the ground
    const p = projectM(L.lat0, L.lon0, 52.95, -1.15);
    const q = projectM(L.lat0, L.lon0, 52.951, -1.149);
    expect(Math.hypot(b.x - a.x, b.y - a.y) / Math.hypot(q.x - p.x, q.y - p.y)).toBeCloseTo(L.scale, 9);
    expect(b.y).toBeLessThan(a.y); // north is up
    expect(L.bar.points).toBeCloseTo(L.bar.metres * L.scale, 9);
    expect([1, 2, 5].map((k) => L.bar.metres / k).some((q) => Number.isInteger(Math.log10(q)))).toBe(true);
    // everything drawn fits: the crime's 100 m circle is inside the box
    const c = L.toPage(52.95, -1.15);
    expect(c.x - 100 * L.scale).toBeGreaterThanOrEqual(0);
    expect(c.y + 100 * L.scale).toBeLessThanOrEqual(400);
  });

  it('rounds scale bars to 1, 2 or 5 × 10^k metres', () => {
    expect([roundLength(7), roundLength(19), roundLength(260), roundLength(999)]).toEqual([5, 10, 200, 500]);
  });

  it('gives the same companion bytes (and SHA-256) for the same data', () => {
    const a = companions(data, 'x');
    const b = companions(structuredClone(data), 'x');
    expect(a.csv.sha256).toBe(b.csv.sha256);
    expect(a.geojson.sha256).toBe(b.geojson.sha256);
    expect(a.csv.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { kinks } from '@turf/kinks';
import { polygon } from '@turf/helpers';
import type { Position } from 'geojson';
import { geometryProblem, MAX_ZONE_VERTICES } from '../../geofence/geometry.js';
import { ringSelfIntersection } from '../../geofence/self-intersection.js';

/**
 * Issue 9, finding 9: zone geometry is bounded (MAX_ZONE_VERTICES, refused by a count before
 * any pairwise work) and self-intersection is found through an R-tree of segments instead of
 * every pair; the answers must stay those of the pairwise check used before (turf's kinks).
 */

// The contract's vectors (shared/data/vectors/geofence.json) are all circles; these are the polygons of the tests.
const NAMED: Array<[string, Position[]]> = [
  ['a bow tie', [[-1.2, 52.9], [-1.1, 53.0], [-1.1, 52.9], [-1.2, 53.0], [-1.2, 52.9]]],
  ['a square', [[-1.16, 52.948], [-1.154, 52.948], [-1.154, 52.952], [-1.16, 52.952], [-1.16, 52.948]]],
  ['a U', [[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3], [0, 0]]],
  ['a figure of eight through one vertex', [[0, 0], [1, 1], [2, 0], [2, 2], [1, 1], [0, 2], [0, 0]]],
  ['a ring with a spike back along an edge', [[0, 0], [2, 0], [1, 0], [1, 1], [0, 0]]],
  ['a ring with a repeated position', [[0, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
  ['a triangle', [[0, 0], [1, 0], [0, 1], [0, 0]]],
];

/** The check used before, kept here as the reference: turf's O(n²) kinks, first point found. */
function pairwise(ring: Position[]): [number, number] | null {
  const k = kinks(polygon([ring]));
  return k.features.length ? (k.features[0]!.geometry.coordinates as [number, number]) : null;
}

/** A closed ring of n positions (n - 1 distinct) round a centre: a simple polygon. */
function circleRing(n: number, lon = -1.15, lat = 52.95, r = 0.01): Position[] {
  const ring = Array.from({ length: n - 1 }, (_, i) => [lon + r * Math.cos((2 * Math.PI * i) / (n - 1)), lat + r * Math.sin((2 * Math.PI * i) / (n - 1))]);
  return [...ring, ring[0]!];
}

const counting = () => {
  const calls = { n: 0 };
  const check = (ring: readonly Position[]) => {
    calls.n++;
    return ringSelfIntersection(ring);
  };
  return { calls, check };
};

describe('zone vertex limit', () => {
  it(`refuses a polygon of ${MAX_ZONE_VERTICES + 1} positions by its count, before any self-intersection check`, () => {
    const { calls, check } = counting();
    const why = geometryProblem({ type: 'Polygon', coordinates: [circleRing(MAX_ZONE_VERTICES + 1)] }, undefined, check);
    expect(why).toBe(`a zone has at most ${MAX_ZONE_VERTICES} vertices, this one has ${MAX_ZONE_VERTICES + 1}`);
    expect(calls.n).toBe(0);
  });

  it('counts every ring of every polygon of a MultiPolygon, and accepts the largest allowed zone', () => {
    const { calls, check } = counting();
    const half = circleRing(MAX_ZONE_VERTICES / 2);
    const far = circleRing(MAX_ZONE_VERTICES / 2, -1.0);
    expect(geometryProblem({ type: 'MultiPolygon', coordinates: [[half], [far]] }, undefined, check)).toBeNull();
    expect(calls.n).toBe(2);
    const over = geometryProblem({ type: 'MultiPolygon', coordinates: [[half], [far, [[-1.0, 52.95], [-0.999, 52.95], [-1.0, 52.951], [-1.0, 52.95]]]] }, undefined, check);
    expect(over).toMatch(/at most 10000 vertices, this one has 10004/);
    expect(calls.n).toBe(2);
  });

  it('still finds a self-intersection in the largest allowed polygon', () => {
    const ring = circleRing(MAX_ZONE_VERTICES);
    [ring[100], ring[5000]] = [ring[5000]!, ring[100]!];
    expect(geometryProblem({ type: 'Polygon', coordinates: [ring] }, undefined)).toMatch(/polygon ring 0 intersects itself near/);
  });
});

describe('indexed self-intersection check', () => {
  it.each(NAMED)('answers as the pairwise check on %s', (_name, ring) => {
    expect(ringSelfIntersection(ring)).toEqual(pairwise(ring));
  });

  it('finds what the pairwise check finds in the named rings (not all valid)', () => {
    expect(NAMED.filter(([, ring]) => pairwise(ring) !== null).map(([n]) => n)).toEqual(['a bow tie', 'a figure of eight through one vertex', 'a ring with a spike back along an edge', 'a ring with a repeated position']);
  });

  it('answers as the pairwise check on random rings, snapped to a grid (touching, collinear) or not', () => {
    const grid = fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 })), { minLength: 3, maxLength: 30 });
    const free = fc.array(fc.tuple(fc.double({ min: -1.2, max: -1.1, noNaN: true }), fc.double({ min: 52.9, max: 53.0, noNaN: true })), { minLength: 3, maxLength: 60 });
    fc.assert(
      fc.property(fc.oneof(grid, free), (pts) => {
        const ring: Position[] = [...pts.map(([x, y]) => [x, y]), [pts[0]![0], pts[0]![1]]];
        expect(ringSelfIntersection(ring)).toEqual(pairwise(ring));
      }),
      { numRuns: 3000 },
    );
  });

  it('answers as the pairwise check on large simple and crossed rings', () => {
    for (const n of [50, 500, 3000]) {
      const ring = circleRing(n);
      expect(ringSelfIntersection(ring)).toEqual(pairwise(ring));
      expect(ringSelfIntersection(ring)).toBeNull();
      [ring[7], ring[n - 9]] = [ring[n - 9]!, ring[7]!];
      expect(ringSelfIntersection(ring)).toEqual(pairwise(ring));
      expect(ringSelfIntersection(ring)).not.toBeNull();
    }
  });
});

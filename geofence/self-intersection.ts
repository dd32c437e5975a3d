import Flatbush from 'flatbush';
import type { Position } from 'geojson';

/**
 * Where a closed ring crosses or touches itself, with the same answers as turf's `kinks` (the
 * check used before, O(n²) pairs): the same segment pairs are compared (not neighbours, not the
 * first with the last) with the same test (collinear segments never count), and the point
 * reported is that of the first pair in turf's order (lowest first segment, then lowest
 * second). Only pairs whose bounding boxes meet are tested: a static R-tree (flatbush) of the
 * segments' boxes gives them, so a ring of n vertices costs about n log n for zone-like shapes.
 * Coordinates are whatever the ring holds (degrees here); the check is planar, as turf's.
 */
export function ringSelfIntersection(ring: readonly Position[]): [number, number] | null {
  const n = ring.length - 1; // segments
  if (n < 2) return null;
  const closed = ring[0]![0] === ring[n]![0] && ring[0]![1] === ring[n]![1];
  const index = new Flatbush(n);
  for (let i = 0; i < n; i++) {
    const [ax, ay] = ring[i]! as [number, number];
    const [bx, by] = ring[i + 1]! as [number, number];
    index.add(Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by));
  }
  index.finish();
  for (let i = 0; i < n; i++) {
    const [ax, ay] = ring[i]! as [number, number];
    const [bx, by] = ring[i + 1]! as [number, number];
    let first = -1;
    let at: [number, number] | null = null;
    for (const k of index.search(Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by))) {
      if (k <= i + 1 || (first !== -1 && k > first)) continue;
      if (closed && i === 0 && k === n - 1) continue;
      const [cx, cy] = ring[k]! as [number, number];
      const [dx, dy] = ring[k + 1]! as [number, number];
      const p = segmentsMeet(ax, ay, bx, by, cx, cy, dx, dy);
      if (p) {
        first = k;
        at = p;
      }
    }
    if (at) return at;
  }
  return null;
}

/** turf kinks' test of two segments: the crossing point when both parameters are in [0, 1]; parallel never. */
function segmentsMeet(x1: number, y1: number, x2: number, y2: number, x3: number, y3: number, x4: number, y4: number): [number, number] | null {
  const den = (y4 - y3) * (x2 - x1) - (x4 - x3) * (y2 - y1);
  if (den === 0) return null;
  const a0 = y1 - y3;
  const b0 = x1 - x3;
  const a = ((x4 - x3) * a0 - (y4 - y3) * b0) / den;
  const b = ((x2 - x1) * a0 - (y2 - y1) * b0) / den;
  if (a >= 0 && a <= 1 && b >= 0 && b <= 1) return [x1 + a * (x2 - x1), y1 + a * (y2 - y1)];
  return null;
}

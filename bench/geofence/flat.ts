import type { Position } from 'geojson';
import type { FixClass } from '../../geofence/geometry.js';

/**
 * A what-if for the benchmark report, not product code: the error-circle test of
 * geofence/geometry.ts classifyFix with the distance to the boundary computed in a local flat
 * frame (metres east/north of the fix, equirectangular on turf's sphere) instead of turf's
 * geodesic point-to-line distance. Over a zone a few hundred metres across the two agree to
 * centimetres; the bench measures both on the same candidates.
 */

const R = 6371008.8;
const RAD = Math.PI / 180;

/** Signed distance in metres from `[lon, lat]` to a polygon's boundary: negative inside (holes are outside). */
export function signedDistanceFlat(lon: number, lat: number, rings: Position[][]): number {
  const kx = Math.cos(lat * RAD) * RAD * R;
  const ky = RAD * R;
  let min2 = Infinity;
  let inside = false;
  for (const ring of rings) {
    for (let j = 0, k = ring.length - 1; j < ring.length; k = j++) {
      const ax = (ring[k]![0]! - lon) * kx;
      const ay = (ring[k]![1]! - lat) * ky;
      const bx = (ring[j]![0]! - lon) * kx;
      const by = (ring[j]![1]! - lat) * ky;
      // even-odd crossing count of a ray along +x from the fix (the origin)
      if (ay > 0 !== by > 0 && ax + ((bx - ax) * -ay) / (by - ay) > 0) inside = !inside;
      const dx = bx - ax;
      const dy = by - ay;
      const len2 = dx * dx + dy * dy;
      const u = len2 > 0 ? Math.min(1, Math.max(0, -(ax * dx + ay * dy) / len2)) : 0;
      const px = ax + u * dx;
      const py = ay + u * dy;
      const d2 = px * px + py * py;
      if (d2 < min2) min2 = d2;
    }
  }
  const d = Math.sqrt(min2);
  return inside ? -d : d;
}

/** classifyFix's three-way answer from the flat signed distance, for a Polygon's rings. */
export function classifyFlat(lon: number, lat: number, accuracy_m: number, rings: Position[][]): FixClass {
  const signed = signedDistanceFlat(lon, lat, rings);
  if (signed <= -accuracy_m) return 'inside';
  if (signed >= accuracy_m) return 'outside';
  return 'uncertain';
}

import { booleanPointInPolygon } from '@turf/boolean-point-in-polygon';
import { distance } from '@turf/distance';
import { bbox as turfBbox } from '@turf/bbox';
import { point, polygon as turfPolygon } from '@turf/helpers';
import { ringSelfIntersection } from './self-intersection.js';
import type { MultiPolygon, Polygon, Position } from 'geojson';

/**
 * Zone geometry and the error-circle test (contract §3). Pure. Coordinates are WGS84
 * `[lon, lat]` degrees; distances are metres, great-circle on turf's sphere (6371008.8 m).
 */

export type FixClass = 'inside' | 'outside' | 'uncertain';

export type ZoneGeometry =
  | { type: 'Polygon'; coordinates: Position[][] }
  | { type: 'MultiPolygon'; coordinates: Position[][][] }
  | { type: 'Point'; coordinates: Position };

export interface Shape {
  geometry: ZoneGeometry;
  /** circle radius in metres, for a Point geometry */
  radius_m?: number;
  /** [minLon, minLat, maxLon, maxLat] of the zone (a circle's extent included) */
  bbox: [number, number, number, number];
}

export const MAX_RADIUS_M = 50_000;
/** most positions in one zone, all rings of all its polygons counted (closing positions included) */
export const MAX_ZONE_VERTICES = 10_000;
const METRES_PER_DEG_LAT = 111_320;

/** Builds the shape of a validated geometry. */
export function toShape(geometry: ZoneGeometry, radius_m?: number): Shape {
  if (geometry.type === 'Point') {
    const [lon, lat] = geometry.coordinates as [number, number];
    const r = radius_m ?? 0;
    const dLat = r / METRES_PER_DEG_LAT;
    const dLon = r / (METRES_PER_DEG_LAT * Math.max(0.01, Math.cos((lat * Math.PI) / 180)));
    return { geometry, radius_m: r, bbox: [lon - dLon, lat - dLat, lon + dLon, lat + dLat] };
  }
  return { geometry, bbox: turfBbox(geometry as Polygon | MultiPolygon) as [number, number, number, number] };
}

/**
 * Classifies a fix's error circle (centre `[lon, lat]`, radius `accuracy_m` metres) against a zone:
 * inside when the whole circle is in the zone, outside when the whole circle is out of it,
 * otherwise uncertain. Holes of polygons count as outside the zone.
 */
export function classifyFix(lon: number, lat: number, accuracy_m: number, shape: Shape): FixClass {
  const p = point([lon, lat]);
  if (shape.geometry.type === 'Point') {
    const d = distance(p, point(shape.geometry.coordinates), { units: 'meters' });
    const r = shape.radius_m ?? 0;
    if (d + accuracy_m <= r) return 'inside';
    if (d - accuracy_m >= r) return 'outside';
    return 'uncertain';
  }
  // signed distance to the boundary: negative inside the zone
  const inside = booleanPointInPolygon(p, shape.geometry as Polygon | MultiPolygon);
  const d = boundaryDistance(lon, lat, shape.geometry);
  const signed = inside ? -d : d;
  if (signed <= -accuracy_m) return 'inside';
  if (signed >= accuracy_m) return 'outside';
  return 'uncertain';
}

const EARTH_RADIUS_M = 6371008.8; // turf's sphere
const RAD = Math.PI / 180;

/**
 * Distance in metres from `[lon, lat]` to the nearest edge of a polygon's rings, in a flat
 * frame centred on the point (equirectangular: metres east and north). Measured against turf's
 * geodesic pointToPolygonDistance on 10,000 fixes x 10,000 zones: the same classes for every
 * fix, at most 7.5 cm apart, about 150 times faster (bench:geofence). Valid for the distances
 * that decide a class (up to the 10 km accuracy limit), not across the antimeridian.
 */
export function boundaryDistance(lon: number, lat: number, g: ZoneGeometry): number {
  const kx = Math.cos(lat * RAD) * RAD * EARTH_RADIUS_M;
  const ky = RAD * EARTH_RADIUS_M;
  const polygons = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
  let best = Infinity;
  for (const rings of polygons) {
    for (const ring of rings) {
      let ax = (ring[0]![0]! - lon) * kx;
      let ay = (ring[0]![1]! - lat) * ky;
      for (let i = 1; i < ring.length; i++) {
        const bx = (ring[i]![0]! - lon) * kx;
        const by = (ring[i]![1]! - lat) * ky;
        const dx = bx - ax;
        const dy = by - ay;
        const len2 = dx * dx + dy * dy;
        const t = len2 > 0 ? Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len2)) : 0;
        const px = ax + t * dx;
        const py = ay + t * dy;
        const dist2 = px * px + py * py;
        if (dist2 < best) best = dist2;
        ax = bx;
        ay = by;
      }
    }
  }
  return Math.sqrt(best);
}

/** Quick bbox test: a circle whose bbox misses the zone's bbox is wholly outside it. */
export function circleBbox(lon: number, lat: number, accuracy_m: number): [number, number, number, number] {
  const dLat = accuracy_m / METRES_PER_DEG_LAT;
  const dLon = accuracy_m / (METRES_PER_DEG_LAT * Math.max(0.01, Math.cos((lat * Math.PI) / 180)));
  return [lon - dLon, lat - dLat, lon + dLon, lat + dLat];
}

/** Finds where a closed ring meets itself (ringSelfIntersection; a parameter so tests can watch it). */
export type SelfIntersection = (ring: readonly Position[]) => [number, number] | null;

/**
 * Why a zone geometry is invalid, or null when it is valid (contract §3: unclosed ring,
 * self-intersection, range). A polygon over MAX_ZONE_VERTICES positions is refused first,
 * by a count alone, before any ring is examined.
 */
export function geometryProblem(geometry: unknown, radius_m: unknown, selfIntersection: SelfIntersection = ringSelfIntersection): string | null {
  const g = geometry as { type?: unknown; coordinates?: unknown };
  if (!g || typeof g !== 'object') return 'geometry is required';
  const vertices = vertexCount(g);
  if (vertices > MAX_ZONE_VERTICES) return `a zone has at most ${MAX_ZONE_VERTICES} vertices, this one has ${vertices}`;
  if (g.type === 'Point') {
    const c = g.coordinates;
    if (!isPosition(c)) return 'a Point needs coordinates [lon, lat]';
    const range = positionProblem(c);
    if (range) return range;
    if (typeof radius_m !== 'number' || !Number.isFinite(radius_m)) return 'a Point zone needs properties.radius_m (metres)';
    if (radius_m <= 0 || radius_m > MAX_RADIUS_M) return `radius_m must be above 0 and at most ${MAX_RADIUS_M} m, got ${radius_m}`;
    return null;
  }
  if (g.type === 'Polygon') return polygonProblem(g.coordinates, 'polygon', selfIntersection);
  if (g.type === 'MultiPolygon') {
    if (!Array.isArray(g.coordinates) || g.coordinates.length === 0) return 'a MultiPolygon needs at least one polygon';
    for (let i = 0; i < g.coordinates.length; i++) {
      const p = polygonProblem(g.coordinates[i], `polygon ${i}`, selfIntersection);
      if (p) return p;
    }
    return null;
  }
  return `geometry type must be Polygon, MultiPolygon or Point, got ${String(g.type)}`;
}

/** Positions of a Polygon or MultiPolygon, counted without looking inside them (0 for anything else). */
function vertexCount(g: { type?: unknown; coordinates?: unknown }): number {
  const ringsOf = (p: unknown) => (Array.isArray(p) ? p.reduce((n: number, ring: unknown) => n + (Array.isArray(ring) ? ring.length : 0), 0) : 0);
  if (g.type === 'Polygon') return ringsOf(g.coordinates);
  if (g.type === 'MultiPolygon' && Array.isArray(g.coordinates)) return g.coordinates.reduce((n: number, p: unknown) => n + ringsOf(p), 0);
  return 0;
}

function polygonProblem(rings: unknown, what: string, selfIntersection: SelfIntersection): string | null {
  if (!Array.isArray(rings) || rings.length === 0) return `${what} needs at least one ring`;
  for (let r = 0; r < rings.length; r++) {
    const ring = rings[r] as unknown;
    const name = `${what} ring ${r}`;
    if (!Array.isArray(ring) || !ring.every(isPosition)) return `${name} must be a list of [lon, lat] positions`;
    for (const pos of ring as Position[]) {
      const range = positionProblem(pos);
      if (range) return `${name}: ${range}`;
    }
    if (ring.length < 4) return `${name} needs at least 4 positions (a closed triangle)`;
    const first = ring[0] as Position;
    const last = ring[ring.length - 1] as Position;
    if (first[0] !== last[0] || first[1] !== last[1]) return `${name} is not closed: its first and last positions differ`;
    const k = selfIntersection(ring as Position[]);
    if (k) return `${name} intersects itself near [${k[0].toFixed(6)}, ${k[1].toFixed(6)}]`;
  }
  if (rings.length > 1) {
    const outer = turfPolygon([rings[0] as Position[]]);
    for (let r = 1; r < rings.length; r++) {
      const inner = rings[r] as Position[];
      if (!inner.every((pos) => booleanPointInPolygon(pos, outer))) return `${what} hole ${r} is not inside the outer ring`;
    }
  }
  return null;
}

function isPosition(v: unknown): v is Position {
  return Array.isArray(v) && v.length >= 2 && v.length <= 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
}

function positionProblem(p: Position): string | null {
  const [lon, lat] = p as [number, number];
  if (lon < -180 || lon > 180) return `longitude ${lon} is out of range -180..180`;
  if (lat < -90 || lat > 90) return `latitude ${lat} is out of range -90..90`;
  return null;
}

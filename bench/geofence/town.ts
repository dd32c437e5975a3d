import type { Position } from 'geojson';
import { createRng, type Rng } from '../../sim/rng.js';
import { toShape } from '../../geofence/geometry.js';
import type { Fix, ZoneRule } from '../../geofence/breach.js';

/**
 * Synthetic zones and GPS tracks around a UK town (Reading, Berkshire) for the geofence
 * benchmarks. Pure and seeded: the same seed gives the same zones and fixes. Coordinates are
 * WGS84 `[lon, lat]` degrees, distances metres, times epoch ms.
 */

export const TOWN = { name: 'Reading, Berkshire', lon: -0.9781, lat: 51.4543 };
const M_PER_DEG_LAT = 111_320;
const mPerDegLon = (lat: number) => M_PER_DEG_LAT * Math.cos((lat * Math.PI) / 180);

/** The point `dx` metres east and `dy` metres north of `[lon, lat]` (local flat approximation). */
export function offset(lon: number, lat: number, dx: number, dy: number): [number, number] {
  return [lon + dx / mPerDegLon(lat), lat + dy / M_PER_DEG_LAT];
}

/**
 * A simple (never self-intersecting) star-shaped polygon: `vertices` points at strictly
 * increasing angles around the centre, each at 0.7..1.0 of `radius` metres. Closed ring, 6 dp.
 * Every point within 0.69 x radius of the centre is inside it.
 */
export function starPolygon(rng: Rng, lon: number, lat: number, radius: number, vertices: number): Position[] {
  const ring: Position[] = [];
  for (let i = 0; i < vertices; i++) {
    const a = ((i + 0.2 + 0.6 * rng.next()) / vertices) * 2 * Math.PI;
    const r = radius * rng.range(0.7, 1);
    const [x, y] = offset(lon, lat, r * Math.cos(a), r * Math.sin(a));
    ring.push([round6(x), round6(y)]);
  }
  ring.push([ring[0]![0]!, ring[0]![1]!]);
  return ring;
}

export interface TownZone {
  ring: Position[];
  centre: [number, number];
  radius: number;
}

/**
 * `count` exclusion polygons of 20-200 vertices, radius log-uniform 20-200 m, centres uniform
 * within `halfSideM` metres (east/west and north/south) of the town centre.
 */
export function townZones(seed: number, count: number, halfSideM = 8000): TownZone[] {
  const rng = createRng(seed);
  const out: TownZone[] = [];
  for (let i = 0; i < count; i++) {
    const centre = offset(TOWN.lon, TOWN.lat, rng.range(-halfSideM, halfSideM), rng.range(-halfSideM, halfSideM));
    const radius = 20 * 10 ** rng.next();
    const vertices = rng.int(20, 200);
    out.push({ ring: starPolygon(rng, centre[0], centre[1], radius, vertices), centre, radius });
  }
  return out;
}

/** The zones as the pure core takes them: always enforced exclusion zones, 60 s grace. */
export function zoneRules(zones: TownZone[]): ZoneRule[] {
  return zones.map((z, i) => ({
    id: `z${i}`,
    kind: 'exclusion' as const,
    shape: toShape({ type: 'Polygon', coordinates: [z.ring] }),
    grace_ms: 60_000,
    since: 0,
    timezone: 'Europe/London',
    schedule: null,
    active_from: null,
    active_to: null,
    exceptions: [],
  }));
}

/** A GPS accuracy radius as tags report it: mostly 3-15 m, sometimes 15-60 m, now and then a wifi/cell fix of 100-1000 m. */
export function accuracyM(rng: Rng): number {
  const r = rng.next();
  return round1(r < 0.7 ? rng.range(3, 15) : r < 0.95 ? rng.range(15, 60) : rng.range(100, 1000));
}

/**
 * `tracks` people walking or driving about town, `perTrack` fixes each, one every 10 s:
 * heading changes a little every step, speed 1.4 m/s (walking) or 9 m/s (driving), and the
 * fix scatters around the true position by about its accuracy.
 */
export function townTracks(seed: number, tracks: number, perTrack: number, t0: number, halfSideM = 8000): Fix[][] {
  const rng = createRng(seed);
  const out: Fix[][] = [];
  for (let k = 0; k < tracks; k++) {
    let x = rng.range(-halfSideM, halfSideM);
    let y = rng.range(-halfSideM, halfSideM);
    let heading = rng.range(0, 2 * Math.PI);
    const speed = rng.chance(0.7) ? 1.4 : 9;
    const fixes: Fix[] = [];
    for (let i = 0; i < perTrack; i++) {
      heading += 0.3 * rng.normal();
      x = clamp(x + speed * 10 * Math.cos(heading), -halfSideM, halfSideM);
      y = clamp(y + speed * 10 * Math.sin(heading), -halfSideM, halfSideM);
      const acc = accuracyM(rng);
      const [lon, lat] = offset(TOWN.lon, TOWN.lat, x + 0.5 * acc * rng.normal(), y + 0.5 * acc * rng.normal());
      fixes.push({ ts: t0 + i * 10_000, lon: round6(lon), lat: round6(lat), accuracy_m: acc });
    }
    out.push(fixes);
  }
  return out;
}

/** Fixes of several tracks interleaved: the first `n` fixes taken round-robin. */
export function sampleFixes(tracks: Fix[][], n: number): Fix[] {
  const out: Fix[] = [];
  for (let i = 0; out.length < n; i++) {
    let any = false;
    for (const t of tracks) {
      if (i < t.length) {
        out.push(t[i]!);
        any = true;
        if (out.length === n) break;
      }
    }
    if (!any) break;
  }
  return out;
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const round1 = (x: number) => Math.round(x * 10) / 10;
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * One subject of the end-to-end fleets (phase d, the soak): a home 1.5 km from two exclusion
 * zones (star polygons, radius 100-250 m, 20-200 vertices), one of them the target a breach
 * walks into. Consumes `rng` in a fixed order, so a seed gives the same town.
 */
export function e2eSubject(rng: Rng, subject: string): { home: [number, number]; target: [number, number]; zones: Array<{ subject: string; name: string; geometry: string }> } {
  const target = offset(TOWN.lon, TOWN.lat, rng.range(-8000, 8000), rng.range(-8000, 8000));
  const a = rng.range(0, 2 * Math.PI);
  const home = offset(target[0], target[1], 1500 * Math.cos(a), 1500 * Math.sin(a));
  const other = offset(home[0], home[1], 1500 * Math.cos(a), 1500 * Math.sin(a));
  const zones = (
    [
      ['target', target],
      ['other', other],
    ] as const
  ).map(([name, c]) => ({ subject, name, geometry: JSON.stringify({ type: 'Polygon', coordinates: [starPolygon(rng, c[0], c[1], rng.range(100, 250), rng.int(20, 200))] }) }));
  return { home, target, zones };
}

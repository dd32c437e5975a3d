import type { GpsReading } from '../ingest/telemetry.js';
import type { Rng } from './rng.js';

/**
 * Where a simulated wearer is, and what their tag's GPS says about it. Pure: positions are
 * functions of a day's itinerary and a time (epoch ms); noise comes from the Rng passed in.
 * Coordinates are WGS84 degrees; distances metres; speeds m/s; headings degrees from north.
 */

export interface LatLon {
  lat: number;
  lon: number;
}
/** Sky view: open sky, inside a building, or between tall buildings (urban canyon). */
export type Env = 'outdoor' | 'indoor' | 'canyon';
export type PlaceKind = 'home' | 'work' | 'shop' | 'friend' | 'office' | 'town' | 'pub';
export interface Place {
  kind: PlaceKind;
  at: LatLon;
  env: Env;
}
export interface Places {
  home: Place;
  work: Place | null;
  shop: Place;
  friend: Place;
  office: Place;
  town: Place;
  pub: Place;
}

export const NOTTINGHAM: LatLon = { lat: 52.9536, lon: -1.1505 };
/** The town-centre area (Old Market Square and the streets around it) that tracks visit: a circle. */
export const TOWN_CENTRE = { name: 'Nottingham town centre', lat: 52.9532, lon: -1.1497, radius_m: 400 } as const;
const PROBATION_OFFICE: LatLon = { lat: 52.9561, lon: -1.1583 };
/** Radius of the loop a wearer walks while in the town centre, metres: well inside TOWN_CENTRE. */
export const TOWN_WALK_RADIUS_M = 150;

const H = 3_600_000;
const M_PER_DEG_LAT = 111_320;
const rad = (d: number) => (d * Math.PI) / 180;

/** The point `eastM` metres east and `northM` metres north of `p` (local flat approximation). */
export function offsetM(p: LatLon, eastM: number, northM: number): LatLon {
  return { lat: p.lat + northM / M_PER_DEG_LAT, lon: p.lon + eastM / (M_PER_DEG_LAT * Math.cos(rad(p.lat))) };
}

/** Distance in metres (equirectangular: exact enough across a town). */
export function distanceM(a: LatLon, b: LatLon): number {
  const x = (b.lon - a.lon) * M_PER_DEG_LAT * Math.cos(rad((a.lat + b.lat) / 2));
  const y = (b.lat - a.lat) * M_PER_DEG_LAT;
  return Math.hypot(x, y);
}

/** Initial bearing from a to b, degrees in [0, 360). */
export function bearingDeg(a: LatLon, b: LatLon): number {
  const x = (b.lon - a.lon) * Math.cos(rad((a.lat + b.lat) / 2));
  const y = b.lat - a.lat;
  return ((Math.atan2(x, y) * 180) / Math.PI + 360) % 360;
}

function polar(p: LatLon, bearing: number, distM: number): LatLon {
  return offsetM(p, distM * Math.sin(rad(bearing)), distM * Math.cos(rad(bearing)));
}

/** A wearer's places: a suburban home 1.5-6 km from the centre, and where they go from it. */
export function placesFor(rng: Rng): Places {
  const home: Place = { kind: 'home', at: polar(NOTTINGHAM, rng.range(0, 360), rng.range(1500, 6000)), env: 'indoor' };
  const near = (kind: PlaceKind, lo: number, hi: number, from = home.at): Place => ({
    kind,
    at: polar(from, rng.range(0, 360), rng.range(lo, hi)),
    env: 'indoor',
  });
  const town: Place = { kind: 'town', at: polar(TOWN_CENTRE, rng.range(0, 360), rng.range(0, 60)), env: 'canyon' };
  return {
    home,
    work: rng.chance(0.55) ? near('work', 1000, 7000) : null,
    shop: near('shop', 250, 900),
    friend: near('friend', 500, 3500),
    office: { kind: 'office', at: PROBATION_OFFICE, env: 'indoor' },
    town,
    pub: rng.chance(0.7) ? near('pub', 20, 200, town.at) : near('pub', 300, 1200),
  };
}

export interface Stay {
  kind: 'stay';
  place: Place;
  from: number;
  to: number;
}
export interface Move {
  kind: 'move';
  from: number;
  to: number;
  path: LatLon[];
  lengthM: number;
  speed: number;
  mode: 'walk' | 'drive';
}
export type Segment = Stay | Move;

/** Travel from a to b leaving at `start`: walk under 1.8 km (1-1.5 m/s), else drive (8-15 m/s), along two street-like legs. */
export function travel(a: Place, b: Place, start: number, rng: Rng): Move {
  const corner0: LatLon = rng.chance(0.5) ? { lat: a.at.lat, lon: b.at.lon } : { lat: b.at.lat, lon: a.at.lon };
  const corner = offsetM(corner0, rng.range(-80, 80), rng.range(-80, 80));
  const path = [a.at, corner, b.at];
  const lengthM = distanceM(a.at, corner) + distanceM(corner, b.at);
  const mode = distanceM(a.at, b.at) < 1800 ? 'walk' : 'drive';
  const speed = mode === 'walk' ? rng.range(1, 1.5) : rng.range(8, 15);
  return { kind: 'move', from: start, to: start + Math.round((lengthM / speed) * 1000), path, lengthM, speed, mode };
}

/**
 * One local day's itinerary, epoch ms. Home until 07:00-10:30, then up to a few outings (work
 * on a workday, the town centre, a shop, the probation office, a friend), home again; on a
 * drinking day, an evening at the pub from `pubFrom` that may run past midnight.
 */
export function planDay(places: Places, dayStart: number, rng: Rng, opts: { workday: boolean; pubFrom: number | null }): Segment[] {
  const outings: Array<[Place, number]> = [];
  if (opts.workday && places.work) outings.push([places.work, rng.range(5, 8)]);
  if (rng.chance(0.45)) outings.push([places.town, rng.range(0.5, 2.5)]);
  if (rng.chance(0.5)) outings.push([places.shop, rng.range(0.2, 0.8)]);
  if (rng.chance(0.12)) outings.push([places.office, rng.range(0.5, 1.2)]);
  if (rng.chance(0.3)) outings.push([places.friend, rng.range(1, 4)]);
  const latest = (opts.pubFrom ?? dayStart + 22.5 * H) - 1.5 * H;
  const segs: Segment[] = [];
  let here = places.home;
  let t = dayStart + Math.round(rng.range(7, 10.5) * H);
  for (const [place, stayH] of outings) {
    const go = travel(here, place, t, rng);
    const until = go.to + Math.round(stayH * H);
    if (until + 0.75 * H > latest) continue;
    segs.push(go, { kind: 'stay', place, from: go.to, to: until });
    here = place;
    t = until + Math.round(rng.range(0, 0.2) * H);
  }
  if (here !== places.home) segs.push(travel(here, places.home, t, rng));
  if (opts.pubFrom !== null) {
    const go = travel(places.home, places.pub, opts.pubFrom, rng);
    const until = go.to + Math.round(rng.range(2.5, 4.5) * H);
    segs.push(go, { kind: 'stay', place: places.pub, from: go.to, to: until }, travel(places.pub, places.home, until, rng));
  }
  return segs;
}

export interface Position {
  at: LatLon;
  env: Env;
  /** true speed, m/s */
  speed: number;
  /** direction of travel, degrees from north, null when still */
  heading: number | null;
  moving: boolean;
}

/** Where the wearer is at `t` given the itinerary covering it (outside every segment: at home). */
export function positionAt(segments: readonly Segment[], home: Place, t: number): Position {
  const seg = segments.find((s) => s.from <= t && t < s.to);
  if (!seg) return { at: home.at, env: 'indoor', speed: 0, heading: null, moving: false };
  if (seg.kind === 'stay') {
    if (seg.place.kind !== 'town') return { at: seg.place.at, env: seg.place.env, speed: 0, heading: null, moving: false };
    // walking a loop round the square at 1.2 m/s
    const theta = (((t - seg.from) / 1000) * 1.2) / TOWN_WALK_RADIUS_M;
    const at = offsetM(seg.place.at, TOWN_WALK_RADIUS_M * Math.sin(theta), TOWN_WALK_RADIUS_M * Math.cos(theta));
    return { at, env: 'canyon', speed: 1.2, heading: ((theta * 180) / Math.PI + 90) % 360, moving: true };
  }
  let d = ((t - seg.from) / 1000) * seg.speed;
  for (let i = 1; i < seg.path.length; i++) {
    const a = seg.path[i - 1]!;
    const b = seg.path[i]!;
    const len = distanceM(a, b);
    if (d <= len || i === seg.path.length - 1) {
      const f = len > 0 ? Math.min(1, d / len) : 1;
      const at = { lat: a.lat + (b.lat - a.lat) * f, lon: a.lon + (b.lon - a.lon) * f };
      return { at, env: 'outdoor', speed: seg.speed, heading: bearingDeg(a, b), moving: true };
    }
    d -= len;
  }
  return { at: home.at, env: 'indoor', speed: 0, heading: null, moving: false };
}

const round = (x: number, dp: number) => Math.round(x * 10 ** dp) / 10 ** dp;

/**
 * The tag's fix of a true position at `t`, or null when it gets none (a gap): GPS with
 * accuracy 5-30 m under open sky and 30-120 m indoors or in an urban canyon, now and then a
 * Wi-Fi (100-400 m) or cell (500-1500 m) fix. The reported position is off by about the
 * accuracy (68 % radius ≈ 1.515 σ of a 2-D normal error).
 */
export function gpsFix(pos: Position, t: number, rng: Rng): GpsReading | null {
  const gapP = pos.env === 'indoor' ? 0.2 : pos.env === 'canyon' ? 0.06 : 0.02;
  if (rng.chance(gapP)) return null;
  const r = rng.next();
  let fix: 'gps' | 'wifi' | 'cell' = 'gps';
  let acc: number;
  if (pos.env === 'indoor' && r < 0.15) [fix, acc] = ['wifi', rng.range(100, 400)];
  else if (pos.env === 'indoor' && r < 0.22) [fix, acc] = ['cell', rng.range(500, 1500)];
  else if (pos.env === 'outdoor' && r < 0.02) [fix, acc] = ['cell', rng.range(500, 1500)];
  else if (pos.env === 'outdoor' || (pos.env === 'canyon' && r < 0.4)) acc = 5 + 25 * rng.next() ** 2;
  else acc = rng.range(30, 120);
  const sigma = acc / 1.515;
  const at = offsetM(pos.at, rng.normal() * sigma, rng.normal() * sigma);
  const reading: GpsReading = { ts: new Date(t).toISOString(), lat: round(at.lat, 6), lon: round(at.lon, 6), accuracy_m: round(acc, 1), fix };
  if (fix !== 'gps') return reading;
  reading.sats = pos.env === 'outdoor' ? rng.int(7, 14) : pos.env === 'canyon' ? rng.int(4, 9) : rng.int(3, 6);
  reading.speed_mps = round(Math.max(0, pos.moving ? pos.speed * (1 + 0.08 * rng.normal()) : rng.range(0, 0.3)), 2);
  if (pos.heading !== null) {
    const h = round((((pos.heading + 6 * rng.normal()) % 360) + 360) % 360, 1);
    reading.heading_deg = h >= 360 ? 0 : h;
  }
  return reading;
}

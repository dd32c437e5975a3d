import type { PackData } from './evidence.files.js';

/**
 * The scale of the evidence diagram. Projection: local equirectangular about the centre of the
 * drawn extent (x = R·Δλ·cos φ0 east, y = R·Δφ north, R = 6,371,008.8 m), metres on the ground.
 * Over a few kilometres its distortion is well under 0.1 %, far below GPS error. One scale for
 * both axes, so every circle (accuracy, zone, crime radius) is drawn true to scale. Pure.
 */

const EARTH_R = 6_371_008.8;
const RAD = Math.PI / 180;

export interface Layout {
  /** centre of the projection, degrees */
  lat0: number;
  lon0: number;
  /** points (1/72 inch) per metre on the ground */
  scale: number;
  /** page position (points; y down) of a WGS84 position */
  toPage(lat: number, lon: number): { x: number; y: number };
  /** the scale bar: a round length in metres and its length on the page in points */
  bar: { metres: number; points: number };
  /** the ratio 1 : N of the printed diagram (1 pt = 1/72 in = 0.3528 mm) */
  ratio: number;
}

/** Local metres east/north of (lat0, lon0). */
export function projectM(lat0: number, lon0: number, lat: number, lon: number): { x: number; y: number } {
  return { x: EARTH_R * (lon - lon0) * RAD * Math.cos(lat0 * RAD), y: EARTH_R * (lat - lat0) * RAD };
}

/** The largest 1, 2 or 5 × 10^k metres not longer than `max` metres. */
export function roundLength(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [5, 2, 1]) if (m * p <= max) return m * p;
  return p;
}

/** Everything drawn (zones, crime circle, error circles) fits a box `width`×`height` points whose top left is (left, top). */
export function layout(d: PackData, box: { left: number; top: number; width: number; height: number }, margin = 14): Layout {
  const pts: Array<{ lat: number; lon: number; r: number }> = [];
  for (const f of d.fixes) pts.push({ lat: f.lat, lon: f.lon, r: f.accuracy_m });
  if (d.target) pts.push({ lat: d.target.lat, lon: d.target.lon, r: d.target.radius_m });
  for (const z of d.zones) {
    const g = z.geometry;
    if (g.type === 'Point') pts.push({ lat: g.coordinates[1]!, lon: g.coordinates[0]!, r: z.radius_m ?? 0 });
    else for (const ring of g.type === 'Polygon' ? g.coordinates : g.coordinates.flat()) for (const p of ring) pts.push({ lat: p[1]!, lon: p[0]!, r: 0 });
  }
  if (pts.length === 0) pts.push({ lat: 0, lon: 0, r: 100 });
  // centre: middle of the lat/lon bounds; extent in local metres, each point grown by its radius
  const lat0 = (Math.min(...pts.map((p) => p.lat)) + Math.max(...pts.map((p) => p.lat))) / 2;
  const lon0 = (Math.min(...pts.map((p) => p.lon)) + Math.max(...pts.map((p) => p.lon))) / 2;
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const p of pts) {
    const m = projectM(lat0, lon0, p.lat, p.lon);
    minX = Math.min(minX, m.x - p.r);
    maxX = Math.max(maxX, m.x + p.r);
    minY = Math.min(minY, m.y - p.r);
    maxY = Math.max(maxY, m.y + p.r);
  }
  const spanX = Math.max(maxX - minX, 20);
  const spanY = Math.max(maxY - minY, 20);
  const scale = Math.min((box.width - 2 * margin) / spanX, (box.height - 2 * margin) / spanY);
  const cx = (minX + maxX) / 2;
  const cy = (minY + maxY) / 2;
  const midX = box.left + box.width / 2;
  const midY = box.top + box.height / 2;
  const toPage = (lat: number, lon: number) => {
    const m = projectM(lat0, lon0, lat, lon);
    return { x: midX + (m.x - cx) * scale, y: midY - (m.y - cy) * scale };
  };
  const metres = roundLength((box.width * 0.3) / scale);
  return { lat0, lon0, scale, toPage, bar: { metres, points: metres * scale }, ratio: Math.round(1 / (scale * (0.0254 / 72))) };
}

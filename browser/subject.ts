/**
 * The subject page's track and replay (browser/pages/subject-replay.ts). The track arrives as
 * columns (`ts` epoch ms device time, `lon`/`lat` WGS84 degrees, `accuracy_m` metres); it is drawn
 * once as two features (a line and a multi-point) in a VectorImageLayer, and the replay moves ONE
 * highlighted fix (its error circle and centre) in a small layer of its own: a frame updates two
 * geometries, never the track's features.
 */
import Feature from 'ol/Feature.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import LineString from 'ol/geom/LineString.js';
import MultiPoint from 'ol/geom/MultiPoint.js';
import Point from 'ol/geom/Point.js';
import { fromLonLat } from 'ol/proj.js';
import { Circle as CircleStyle, Fill, Stroke, Style } from 'ol/style.js';
import type Map from 'ol/Map.js';
import { geodesicCircle } from './map.js';

export interface TrackColumns {
  from: string;
  to: string;
  count: number;
  truncated: boolean;
  ts: number[];
  lon: number[];
  lat: number[];
  accuracy_m: number[];
}

/** The index of the last fix at or before `t` (epoch ms); 0 when `t` is before the first. Binary search. */
export function fixAt(ts: readonly number[], t: number): number {
  let lo = 0;
  let hi = ts.length - 1;
  if (hi < 0 || t <= ts[0]!) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ts[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** A device time in words, in the person's time zone, e.g. "2 Dec 2026, 14:05:09 GMT". */
export function timeFormatter(timezone: string): (ms: number) => string {
  const f = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' });
  return (ms) => f.format(new Date(ms));
}

const TRACK_LINE = new Style({ stroke: new Stroke({ color: '#505a5f', width: 2 }) });
const TRACK_POINTS = new Style({ image: new CircleStyle({ radius: 2.5, fill: new Fill({ color: '#505a5f' }) }) });
const HIGHLIGHT_CIRCLE = new Style({ stroke: new Stroke({ color: '#0b0c0c', width: 3 }), fill: new Fill({ color: 'rgba(255,221,0,0.45)' }) });
const HIGHLIGHT_CENTRE = new Style({ image: new CircleStyle({ radius: 6, fill: new Fill({ color: '#0b0c0c' }), stroke: new Stroke({ color: '#ffdd00', width: 2 }) }) });
export const LATEST_STYLE = [
  new Style({ stroke: new Stroke({ color: '#4c2c92', width: 2 }), fill: new Fill({ color: 'rgba(76,44,146,0.12)' }) }),
];
export const LATEST_CENTRE = new Style({ image: new CircleStyle({ radius: 5, fill: new Fill({ color: '#4c2c92' }) }) });

/** The track as two features: the line through every fix and every fix as a point. */
export function trackFeatures(t: TrackColumns): Feature[] {
  const coords = t.ts.map((_, i) => fromLonLat([t.lon[i]!, t.lat[i]!]));
  const line = new Feature(new LineString(coords));
  line.setStyle(TRACK_LINE);
  const points = new Feature(new MultiPoint(coords));
  points.setStyle(TRACK_POINTS);
  return coords.length > 1 ? [line, points] : [points];
}

/** The one highlighted fix of a replay: its error circle and centre, in a layer of their own above `map`'s others. */
export class Highlight {
  private readonly circle = new Feature();
  private readonly centre = new Feature(new Point([0, 0]));
  private shown = -1;

  constructor(map: Map, private readonly t: TrackColumns) {
    this.circle.setStyle(HIGHLIGHT_CIRCLE);
    this.centre.setStyle(HIGHLIGHT_CENTRE);
    const source = new VectorSource({ features: [this.circle, this.centre] });
    map.addLayer(new VectorLayer({ source, updateWhileAnimating: true, updateWhileInteracting: true, zIndex: 10 }));
  }

  /** Moves the highlight to fix `i` (nothing to do when it is already there). */
  show(i: number): void {
    if (i === this.shown) return;
    this.shown = i;
    const lon = this.t.lon[i]!;
    const lat = this.t.lat[i]!;
    this.circle.setGeometry(geodesicCircle(lon, lat, this.t.accuracy_m[i]!));
    (this.centre.getGeometry() as Point).setCoordinates(fromLonLat([lon, lat]));
  }
}

/** The crime pages' map pieces: the crime location with its radius R (metres, geodesic), drawn apart from zones and fixes. */
import Feature from 'ol/Feature.js';
import Point from 'ol/geom/Point.js';
import { fromLonLat } from 'ol/proj.js';
import { Circle as CircleStyle, Fill, Stroke, Style } from 'ol/style.js';
import { geodesicCircle } from './map.js';

export interface CrimeSpot { ref: string; lat: number; lon: number; radius_m: number }

/** Why a fix decides (crime/rules.ts) → the class styles of map.ts: within solid red, overlaps dotted amber, reachable dashed blue. */
export const REASON_CLASS: Record<string, string> = { within: 'inside', overlaps: 'uncertain', reachable: 'outside' };

export function crimeFeatures(c: CrimeSpot): Feature[] {
  const circle = new Feature(geodesicCircle(c.lon, c.lat, c.radius_m));
  circle.setStyle(new Style({ stroke: new Stroke({ color: '#0b0c0c', width: 3, lineDash: [12, 5] }), fill: new Fill({ color: 'rgba(11,12,12,0.04)' }) }));
  circle.set('crime', c.ref);
  const centre = new Feature(new Point(fromLonLat([c.lon, c.lat])));
  centre.setStyle(new Style({ image: new CircleStyle({ radius: 6, fill: new Fill({ color: '#0b0c0c' }), stroke: new Stroke({ color: '#ffffff', width: 2 }) }) }));
  return [circle, centre];
}

/**
 * The console's maps (OpenLayers). Coordinates arrive as WGS84 lon/lat (degrees); the view is
 * Web Mercator (EPSG:3857). Error circles and circle zones are geodesic polygons (radius in
 * metres on the ground), so they are true to scale at any latitude. Without MAP_TILE_URL the map
 * has a plain background and a scale line and requests nothing; with it, an XYZ raster layer
 * with its attribution.
 */
import 'ol/ol.css';
import Map from 'ol/Map.js';
import View from 'ol/View.js';
import Feature from 'ol/Feature.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorImageLayer from 'ol/layer/VectorImage.js';
import VectorSource from 'ol/source/Vector.js';
import TileLayer from 'ol/layer/Tile.js';
import XYZ from 'ol/source/XYZ.js';
import ScaleLine from 'ol/control/ScaleLine.js';
import { defaults as defaultControls } from 'ol/control/defaults.js';
import { circular } from 'ol/geom/Polygon.js';
import Polygon from 'ol/geom/Polygon.js';
import MultiPolygon from 'ol/geom/MultiPolygon.js';
import LineString from 'ol/geom/LineString.js';
import Point from 'ol/geom/Point.js';
import { fromLonLat } from 'ol/proj.js';
import { Circle as CircleStyle, Fill, Stroke, Style } from 'ol/style.js';
import type Geometry from 'ol/geom/Geometry.js';

export type FixClass = 'inside' | 'outside' | 'uncertain';
export interface Fix { ts: string; lon: number; lat: number; accuracy_m: number; class?: FixClass | string }
export type ZoneGeometry =
  | { type: 'Polygon'; coordinates: number[][][] }
  | { type: 'MultiPolygon'; coordinates: number[][][][] }
  | { type: 'Point'; coordinates: number[] };
export interface Zone { id?: string; name?: string; kind: 'exclusion' | 'inclusion'; geometry: ZoneGeometry; radius_m?: number | null }

/** Data the server put in the page: `<script type="application/json" id="…">` (not executed; allowed by the CSP). */
export function pageData<T>(id: string): T {
  const el = document.getElementById(id);
  if (!el?.textContent) throw new Error(`page data #${id} missing`);
  return JSON.parse(el.textContent) as T;
}

/** Colours and dash patterns differ per class, so the class is never told by colour alone (the table and legend say it in words). */
export const CLASS_STYLE: Record<FixClass, { stroke: string; fill: string; dash?: number[] }> = {
  inside: { stroke: '#d4351c', fill: 'rgba(212,53,28,0.15)' },
  outside: { stroke: '#1d70b8', fill: 'rgba(29,112,184,0.12)', dash: [6, 4] },
  uncertain: { stroke: '#b58840', fill: 'rgba(255,221,0,0.2)', dash: [2, 3] },
};

export function zoneStyle(kind: Zone['kind']): Style {
  return new Style({
    stroke: new Stroke({ color: kind === 'exclusion' ? '#d4351c' : '#00703c', width: 3, lineDash: kind === 'exclusion' ? undefined : [10, 6] }),
    fill: new Fill({ color: kind === 'exclusion' ? 'rgba(212,53,28,0.08)' : 'rgba(0,112,60,0.08)' }),
  });
}

export function circleStyle(cls: string | undefined, highlighted = false): Style {
  const s = CLASS_STYLE[(cls as FixClass) ?? 'outside'] ?? CLASS_STYLE.outside;
  return new Style({
    stroke: new Stroke({ color: highlighted ? '#0b0c0c' : s.stroke, width: highlighted ? 3 : 1.5, lineDash: highlighted ? undefined : s.dash }),
    fill: new Fill({ color: highlighted ? 'rgba(255,221,0,0.45)' : s.fill }),
    image: new CircleStyle({ radius: highlighted ? 5 : 3, fill: new Fill({ color: highlighted ? '#0b0c0c' : s.stroke }) }),
  });
}

/** A geodesic circle of `radius_m` metres around lon/lat, in the map's projection. */
export function geodesicCircle(lon: number, lat: number, radius_m: number): Polygon {
  return circular([lon, lat], Math.max(radius_m, 0.5), 64).transform('EPSG:4326', 'EPSG:3857') as Polygon;
}

export function zoneGeometry(z: Zone): Geometry {
  const g = z.geometry;
  if (g.type === 'Point') return geodesicCircle(g.coordinates[0]!, g.coordinates[1]!, z.radius_m ?? 0);
  if (g.type === 'Polygon') return new Polygon(g.coordinates.map((ring) => ring.map((p) => fromLonLat(p))));
  return new MultiPolygon(g.coordinates.map((poly) => poly.map((ring) => ring.map((p) => fromLonLat(p)))));
}

export function zoneFeature(z: Zone): Feature {
  const f = new Feature(zoneGeometry(z));
  f.setStyle(zoneStyle(z.kind));
  f.set('zone', z);
  return f;
}

/** A fix as its error circle (accuracy radius, metres) with its centre point. */
export function fixFeature(fix: Fix, highlighted = false): Feature {
  const f = new Feature(geodesicCircle(fix.lon, fix.lat, fix.accuracy_m));
  f.setStyle([circleStyle(fix.class, highlighted), new Style({ geometry: new Point(fromLonLat([fix.lon, fix.lat])), image: circleStyle(fix.class, highlighted).getImage() ?? undefined })]);
  f.set('fix', fix);
  return f;
}

export function trackFeature(fixes: readonly Fix[]): Feature {
  const f = new Feature(new LineString(fixes.map((p) => fromLonLat([p.lon, p.lat]))));
  f.setStyle(new Style({ stroke: new Stroke({ color: '#505a5f', width: 2 }) }));
  return f;
}

export interface ConsoleMap { map: Map; source: VectorSource; fit(): void }

/**
 * A map in `el` (a `.console-map` element from the `consoleMap` macro): its data-tile-url and
 * data-tile-attribution say whether there is a base layer. `image`: the vector layer is a
 * VectorImageLayer (redrawn only when the view changes, not when another layer changes).
 */
export function createMap(el: HTMLElement, opts: { image?: boolean } = {}): ConsoleMap {
  const source = new VectorSource();
  const layers: Array<TileLayer<XYZ> | VectorLayer | VectorImageLayer> = [];
  const tileUrl = el.dataset.tileUrl;
  if (tileUrl) layers.push(new TileLayer({ source: new XYZ({ url: tileUrl, attributions: el.dataset.tileAttribution ?? '', crossOrigin: null }) }));
  // `image`: drawn once per view change into an image (many fixes; a page redrawing often, e.g. a replay)
  layers.push(opts.image ? new VectorImageLayer({ source }) : new VectorLayer({ source }));
  const map = new Map({
    target: el,
    layers,
    controls: defaultControls({ attribution: !!tileUrl, rotate: false }).extend([new ScaleLine({ units: 'metric', minWidth: 100 })]),
    view: new View({ center: fromLonLat([-1.5, 52.5]), zoom: 6, maxZoom: 21 }),
  });
  const fit = () => {
    const extent = source.getExtent();
    if (extent && Number.isFinite(extent[0])) map.getView().fit(extent, { padding: [30, 30, 30, 30], maxZoom: 19 });
  };
  return { map, source, fit };
}

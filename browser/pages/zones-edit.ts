/**
 * The zone form's map (console/views/zones/edit.njk): draw or change a circle or a polygon with
 * OpenLayers' Draw and Modify interactions, which fill the form's text fields (the form works
 * without this script); typing in the fields redraws the map. The person's other zones are
 * drawn for reference. Fields: latitude/longitude in WGS84 degrees, radius in metres on the
 * ground; the map is Web Mercator, where a circle of R ground metres has radius R / cos(lat).
 */
import Feature from 'ol/Feature.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import Draw from 'ol/interaction/Draw.js';
import Modify from 'ol/interaction/Modify.js';
import Circle from 'ol/geom/Circle.js';
import Polygon from 'ol/geom/Polygon.js';
import MultiPoint from 'ol/geom/MultiPoint.js';
import { fromLonLat, toLonLat } from 'ol/proj.js';
import { getDistance } from 'ol/sphere.js';
import { Circle as CircleStyle, Fill, Stroke, Style } from 'ol/style.js';
import { createMap, pageData, zoneFeature, type Zone } from '../map.js';

const section = document.getElementById('zone-map-section');
const el = document.getElementById('zone-map');
const form = document.querySelector<HTMLFormElement>('form[data-testid="zone-form"]');
if (section && el && form) {
  section.hidden = false;
  const field = (id: string) => document.getElementById(id) as HTMLInputElement | HTMLTextAreaElement;
  const lat = field('centre_lat');
  const lon = field('centre_lon');
  const radius = field('radius_m');
  const vertices = field('vertices');
  const shapeRadio = (v: 'circle' | 'polygon') => document.querySelector<HTMLInputElement>(`input[name="shape"][value="${v}"]`)!;
  const status = document.getElementById('zone-map-status')!;
  const buttons = [...document.querySelectorAll<HTMLButtonElement>('button[data-draw]')];

  const m = createMap(el);
  for (const z of pageData<{ zones: Zone[] }>('zone-map-data').zones) m.source.addFeature(zoneFeature(z));

  const editing = new VectorSource();
  const blue = '#1d70b8';
  m.map.addLayer(
    new VectorLayer({
      source: editing,
      style: [
        new Style({ stroke: new Stroke({ color: blue, width: 4 }), fill: new Fill({ color: 'rgba(29,112,184,0.15)' }) }),
        // corners marked (a polygon's vertices), so the shape is not told by colour alone
        new Style({
          image: new CircleStyle({ radius: 5, fill: new Fill({ color: '#ffffff' }), stroke: new Stroke({ color: blue, width: 2 }) }),
          geometry: (f) => {
            const g = f.getGeometry();
            return g instanceof Polygon ? new MultiPoint(g.getCoordinates()[0] ?? []) : undefined;
          },
        }),
      ],
    }),
  );

  const round = (n: number, dp: number) => String(Math.round(n * 10 ** dp) / 10 ** dp);
  /** Checks a shape radio as a click would (its change event shows that shape's fields). */
  const choose = (v: 'circle' | 'polygon') => {
    if (!shapeRadio(v).checked) shapeRadio(v).click();
  };

  /** while the map writes the fields: their events must not redraw the map */
  let writing = false;
  /** The map's shape into the fields. */
  const writeFields = (f: Feature) => {
    writing = true;
    try {
      fill(f);
    } finally {
      writing = false;
    }
  };
  const fill = (f: Feature) => {
    const g = f.getGeometry();
    if (g instanceof Circle) {
      const c = g.getCenter();
      const [clon, clat] = toLonLat(c) as [number, number];
      const edge = toLonLat([c[0]! + g.getRadius(), c[1]!]);
      choose('circle');
      lat.value = round(clat, 6);
      lon.value = round(clon, 6);
      radius.value = String(Math.max(1, Math.round(getDistance([clon, clat], edge))));
    } else if (g instanceof Polygon) {
      const ring = g.getCoordinates()[0] ?? [];
      choose('polygon');
      vertices.value = ring
        .slice(0, -1)
        .map((p) => toLonLat(p))
        .map(([x, y]) => `${round(y!, 6)}, ${round(x!, 6)}`)
        .join('\n');
    }
  };

  /** The fields into the map's shape (nothing drawn while they do not describe one). */
  const readFields = () => {
    if (writing) return;
    editing.clear();
    const num = (s: string) => (/^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$/.test(s) ? Number(s) : NaN);
    if (shapeRadio('circle').checked) {
      const [y, x, r] = [num(lat.value), num(lon.value), num(radius.value)];
      if ([x, y, r].every(Number.isFinite) && Math.abs(y) < 85 && r > 0) editing.addFeature(new Feature(new Circle(fromLonLat([x, y]), r / Math.cos((y * Math.PI) / 180))));
    } else if (shapeRadio('polygon').checked) {
      const ring = vertices.value
        .split(/\r?\n/)
        .map((l) => l.split(/[\s,;]+/).filter(Boolean).map(num))
        .filter((p) => p.length === 2 && p.every(Number.isFinite))
        .map(([y, x]) => fromLonLat([x!, y!]));
      if (ring.length >= 3) editing.addFeature(new Feature(new Polygon([[...ring, ring[0]!]])));
    }
  };

  let draw: Draw | null = null;
  const stopDrawing = () => {
    if (draw) m.map.removeInteraction(draw);
    draw = null;
    for (const b of buttons) if (b.dataset.draw !== 'clear') b.setAttribute('aria-pressed', 'false');
  };
  const startDrawing = (type: 'Circle' | 'Polygon', button: HTMLButtonElement) => {
    stopDrawing();
    editing.clear();
    draw = new Draw({ source: editing, type });
    draw.on('drawend', (e) => {
      writeFields(e.feature);
      stopDrawing();
      status.textContent = type === 'Circle' ? 'Circle drawn: its centre and radius are in the fields below.' : 'Polygon drawn: its corners are in the field below.';
    });
    m.map.addInteraction(draw);
    button.setAttribute('aria-pressed', 'true');
    status.textContent = type === 'Circle' ? 'Drawing a circle: click the centre, then click the edge.' : 'Drawing a polygon: click each corner, then click the first corner again to finish.';
  };

  for (const b of buttons) {
    b.addEventListener('click', () => {
      if (b.dataset.draw === 'clear') {
        stopDrawing();
        editing.clear();
        for (const f of [lat, lon, radius, vertices]) f.value = '';
        status.textContent = 'The shape was cleared.';
      } else startDrawing(b.dataset.draw as 'Circle' | 'Polygon', b);
    });
  }
  const modify = new Modify({ source: editing });
  modify.on('modifyend', (e) => {
    const f = e.features.item(0);
    if (f) writeFields(f);
  });
  m.map.addInteraction(modify);

  for (const f of [lat, lon, radius, vertices]) f.addEventListener('input', readFields);
  for (const v of ['circle', 'polygon'] as const) shapeRadio(v).addEventListener('change', readFields);

  /** Only the chosen shape's fields are shown (all of them before a shape is chosen, and without this script). */
  const showFields = () => {
    const chosen = shapeRadio('circle').checked ? 'circle' : shapeRadio('polygon').checked ? 'polygon' : null;
    for (const v of ['circle', 'polygon'] as const) document.getElementById(`shape-${v}-fields`)!.hidden = chosen !== null && chosen !== v;
  };
  for (const v of ['circle', 'polygon'] as const) shapeRadio(v).addEventListener('change', showFields);
  showFields();
  readFields();
  const shown = [...m.source.getFeatures(), ...editing.getFeatures()];
  if (shown.length) {
    const extent = shown.map((f) => f.getGeometry()!.getExtent()).reduce((a, b) => [Math.min(a[0]!, b[0]!), Math.min(a[1]!, b[1]!), Math.max(a[2]!, b[2]!), Math.max(a[3]!, b[3]!)]);
    m.map.getView().fit(extent, { padding: [40, 40, 40, 40], maxZoom: 17 });
  }
  el.dataset.ready = 'true';
}

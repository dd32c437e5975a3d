/** The alert page's evidence map: the zone, each evidence fix as its error circle coloured by class, the track between them. */
import { createMap, fixFeature, pageData, trackFeature, zoneFeature, type Fix, type Zone } from '../map.js';

const el = document.getElementById('alert-map');
if (el) {
  const data = pageData<{ zone: Zone | null; fixes: Fix[] }>('alert-map-data');
  const m = createMap(el);
  if (data.zone) m.source.addFeature(zoneFeature(data.zone));
  if (data.fixes.length > 1) m.source.addFeature(trackFeature(data.fixes));
  for (const f of data.fixes) m.source.addFeature(fixFeature(f));
  m.fit();
  el.dataset.ready = 'true';
}

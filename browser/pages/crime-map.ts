/** The crime page's map: the crime and its radius R, each matched person's deciding fixes as error circles joined in time order. */
import { createMap, fixFeature, pageData, trackFeature, type Fix } from '../map.js';
import { crimeFeatures, REASON_CLASS, type CrimeSpot } from '../crime.js';

const el = document.getElementById('crime-map');
if (el) {
  const data = pageData<{ crime: CrimeSpot; subjects: Array<{ subject_id: string; category: string; fixes: Fix[] }> }>('crime-map-data');
  const m = createMap(el);
  for (const f of crimeFeatures(data.crime)) m.source.addFeature(f);
  for (const s of data.subjects) {
    if (s.fixes.length > 1) m.source.addFeature(trackFeature(s.fixes));
    for (const f of s.fixes) m.source.addFeature(fixFeature({ ...f, class: REASON_CLASS[String(f.class)] ?? 'outside' }));
  }
  m.fit();
  el.dataset.ready = 'true';
  el.dataset.features = String(m.source.getFeatures().length);
}

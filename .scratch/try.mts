import { writeFileSync } from 'node:fs';
import { buildEvidencePdf } from '/work/wt/evidence/console/evidence.pdf.ts';
import { companions } from '/work/wt/evidence/console/evidence.files.ts';
const fixes = [0,1,2,3,4].map((i) => ({ n: i+1, ts: new Date(Date.UTC(2026,11,1,10,i)).toISOString(), received_at: new Date(Date.UTC(2026,11,1,10,i,4)).toISOString(), lat: 52.95 + i*0.0003, lon: -1.15 + i*0.0002, accuracy_m: 10 + i*8, class: ['inside','outside','uncertain'][i%3]!, device_id: 'D1', distance_m: null }));
const data = { reference: 'alert 123', subject: { id: 'S-1', display_name: 'Alice Example' }, zones: [{ id: 'z', name: 'Town centre', kind: 'exclusion' as const, geometry: { type: 'Polygon' as const, coordinates: [[[-1.1505,52.9498],[-1.1490,52.9498],[-1.1490,52.9510],[-1.1505,52.9510],[-1.1505,52.9498]]] }, radius_m: null }], target: { label: 'CR1', lat: 52.9505, lon: -1.1497, radius_m: 100 }, fixes };
const c = companions(data, 'alert-123');
const pdf = await buildEvidencePdf({ title: 'Evidence pack: Entered an exclusion zone', data, summary: [['Alert', 'Entered an exclusion zone'], ['Severity', 'High']], late: 'raised late because...', versions: [['Rule version', 'not stored']], notes: ['a note'], generatedAt: new Date(), generatedBy: 'om-1 (offender manager)', csv: c.csv, geojson: c.geojson });
writeFileSync('/tmp/ev/a.pdf', pdf);

import proj4 from 'proj4';
import { EPSG_27700 } from '../crime/grid.js';
import { planSubjects, fixAt, crimeCsv } from '../bench/crime/data.js';
const H = 3_600_000, MIN = 60_000, G = 3600_000, V = 20, R = 100;
const N = 12000;
const subjects = planSubjects(N, 42);
const end = Math.floor(Date.now() / MIN) * MIN - 30 * MIN;
const from = end - 24 * H;
type Hr = { minLat: number; maxLat: number; minLon: number; maxLon: number; maxA: number; first: number; last: number; gap: number; n: number };
const hours: Map<number, Hr>[] = [];
let t0 = performance.now();
for (const s of subjects) {
  const m = new Map<number, Hr>();
  let prev: { ts: number; h: number } | null = null;
  for (let k = Math.ceil(from / MIN); k < Math.floor(end / MIN); k++) {
    const f = fixAt(s, k); if (!f) continue;
    const h = Math.floor(f.ts / H);
    let x = m.get(h);
    if (!x) m.set(h, (x = { minLat: 99, maxLat: -99, minLon: 999, maxLon: -999, maxA: 0, first: f.ts, last: f.ts, gap: 0, n: 0 }));
    x.minLat = Math.min(x.minLat, f.lat); x.maxLat = Math.max(x.maxLat, f.lat); x.minLon = Math.min(x.minLon, f.lon); x.maxLon = Math.max(x.maxLon, f.lon);
    x.maxA = Math.max(x.maxA, f.acc); if (x.n) x.gap = Math.max(x.gap, f.ts - x.last); x.last = f.ts; x.n++;
  }
  hours.push(m);
}
console.log('gen', (performance.now() - t0) / 1000);
const inv = proj4(EPSG_27700, 'WGS84');
const csv = crimeCsv(subjects, 5000, from + H, end, 'X', 1);
const crimes = csv.trim().split('\n').map((l) => { const c = l.split(','); const p = (s: string) => Date.UTC(+s.slice(0,4), +s.slice(4,6)-1, +s.slice(6,8), +s.slice(8,10), +s.slice(10,12), +s.slice(12,14));
  let lat: number, lon: number; if (c[11] === 'OSGB36') { [lon, lat] = inv.forward([+c[7]!, +c[8]!]) as [number, number]; } else { lat = +c[9]!; lon = +c[10]!; }
  return { from: p(c[5]!), to: p(c[6]!), lat, lon }; });
const hitHours = new Set<number>(); let pairs2 = 0; const intervals2: [number, number][][] = subjects.map(() => []);
function fixCand(k: number, c: {from:number,to:number,lat:number,lon:number}): boolean {
  const s = subjects[k]!; let prev: {ts:number,lat:number,lon:number,acc:number}|null = null;
  for (let m = Math.ceil((c.from - G) / MIN) - 1; m <= Math.floor((c.to) / MIN) + 61; m++) { const f = fixAt(s, m); if (!f) continue;
    if (prev) { const gap = f.ts - prev.ts; const D = gap <= G ? gap : 0; if (prev.ts <= c.to && prev.ts + D >= c.from && prev.ts >= c.from - G) { const dy = (prev.lat - c.lat) * 111195, dx = (prev.lon - c.lon) * 111195 * Math.cos(c.lat * Math.PI / 180); if (Math.hypot(dx, dy) - prev.acc - R <= V * D / 1000 + 1) return true; } }
    prev = f; }
  return false; }
let pairs = 0, fixesLoaded = 0; const subj = new Set<number>(); let fixesUnion = 0;
const intervals: [number, number][][] = subjects.map(() => []);
for (const c of crimes) {
  for (let k = 0; k < N; k++) {
    const m = hours[k]!; let hit = false;
    for (let h = Math.floor((c.from - G) / H); h <= Math.floor(c.to / H) && !hit; h++) {
      const x = m.get(h); if (!x) continue;
      const nx = m.get(h + 1) ?? m.get(h + 2);
      let crossGap = nx ? nx.first - x.last : Infinity; if (crossGap > G) crossGap = 0;
      // bound: next hour might be further; approximate
      const g = Math.min(G, Math.max(x.gap > G ? 0 : x.gap, crossGap));
      const marg = x.maxA + R + V * g / 1000;
      const dLat = marg / 111195, dLon = dLat / Math.cos((Math.abs(x.maxLat) + dLat) * Math.PI / 180);
      if (c.lat < x.minLat - dLat || c.lat > x.maxLat + dLat || c.lon < x.minLon - dLon || c.lon > x.maxLon + dLon) continue;
      if (x.first > c.to || x.last + g < c.from) continue;
      hit = true; hitHours.add(k*100000+h);
    }
    if (hit && fixCand(k, c)) { pairs2++; intervals2[k]!.push([c.from - G, c.to + G]); }
    if (hit) { pairs++; subj.add(k); fixesLoaded += (c.to - c.from + 2 * G) / MIN; intervals[k]!.push([c.from - G, c.to + G]); }
  }
}
for (const iv of intervals) { iv.sort((a, b) => a[0] - b[0]); let cur: [number, number] | null = null; for (const x of iv) { if (cur && x[0] <= cur[1]) cur[1] = Math.max(cur[1], x[1]); else { if (cur) fixesUnion += (cur[1] - cur[0]) / MIN; cur = [...x]; } } if (cur) fixesUnion += (cur[1] - cur[0]) / MIN; }
let u2 = 0; for (const iv of intervals2) { iv.sort((a, b) => a[0] - b[0]); let cur: [number, number] | null = null; for (const x of iv) { if (cur && x[0] <= cur[1]) cur[1] = Math.max(cur[1], x[1]); else { if (cur) u2 += (cur[1] - cur[0]) / MIN; cur = [...x]; } } if (cur) u2 += (cur[1] - cur[0]) / MIN; }
console.log({ hitHours: hitHours.size, pairs2, u2 });
console.log({ pairs, perCrime: pairs / crimes.length, subjects: subj.size, fixesPairs: fixesLoaded, fixesUnion });

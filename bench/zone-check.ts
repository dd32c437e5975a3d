import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import { kinks } from '@turf/kinks';
import { polygon } from '@turf/helpers';
import type { Position } from 'geojson';
import { geometryProblem, MAX_ZONE_VERTICES } from '../geofence/geometry.js';

/**
 * `npm run bench:zone-check` (issue 9, finding 9): the event loop's delay while a zone of the
 * largest allowed size (MAX_ZONE_VERTICES positions) is checked, with the pairwise check used
 * before (turf's kinks, O(n²)) and with the current one (geometryProblem: vertex cap, then an
 * R-tree of segments). The check is synchronous, so the longest delay is how long one check
 * holds every other request of the API. Times in milliseconds. `--runs N` (default 5).
 */

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 0) || 5;

/** A simple ring of n positions (closing one included) round a centre, radius r degrees, wobbling by `wobble`. */
function ring(n: number, wobble = 0): Position[] {
  const pts = Array.from({ length: n - 1 }, (_, i) => {
    const a = (2 * Math.PI * i) / (n - 1);
    const r = 0.01 * (1 + wobble * Math.sin(a * 97));
    return [-1.15 + r * Math.cos(a), 52.95 + r * Math.sin(a)];
  });
  return [...pts, pts[0]!];
}

/** A comb: long thin teeth side by side, so many segments' boxes overlap (the R-tree's hard case). */
function comb(n: number): Position[] {
  const teeth = Math.floor((n - 3) / 4);
  const [x0, y0, w, h] = [-1.5, 52.9, 1e-4, 0.1]; // teeth w degrees wide, h high
  const pts: Position[] = [[x0, y0]];
  for (let t = 0; t < teeth; t++) pts.push([x0 + (t * 2 + 1) * w, y0], [x0 + (t * 2 + 1) * w, y0 + h], [x0 + (t * 2 + 2) * w, y0 + h], [x0 + (t * 2 + 2) * w, y0 + h * (0.5 + (t % 2) * 0.25)]);
  pts.push([x0 + (teeth * 2 + 1) * w, y0 - w], [x0, y0 - w], [x0, y0]);
  return pts;
}

const crossed = (r: Position[]) => {
  const c = r.map((p) => [...p]);
  [c[100], c[c.length - 200]] = [c[c.length - 200]!, c[100]!];
  return c;
};

const cases: Array<[string, Position[]]> = [
  ['circle-like', ring(MAX_ZONE_VERTICES, 0.05)],
  ['circle-like, one crossing', crossed(ring(MAX_ZONE_VERTICES, 0.05))],
  ['comb of long teeth (many overlapping boxes)', comb(MAX_ZONE_VERTICES)],
  [`over the limit (${MAX_ZONE_VERTICES * 5} positions)`, ring(MAX_ZONE_VERTICES * 5)],
];

const old = (r: Position[]) => kinks(polygon([r])).features.length;
const current = (r: Position[]) => geometryProblem({ type: 'Polygon', coordinates: [r] }, undefined);

async function measure(check: (r: Position[]) => unknown, r: Position[]) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  await tick();
  h.enable();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    await new Promise((res) => setTimeout(res, 20)); // let the monitor sample an idle loop between checks
    const t = performance.now();
    check(r);
    times.push(performance.now() - t);
  }
  await new Promise((res) => setTimeout(res, 20));
  h.disable();
  return { median: times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

const rows: string[][] = [];
for (const [name, r] of cases) {
  const over = r.length > MAX_ZONE_VERTICES;
  const a = over ? null : await measure(old, r); // over the limit: the old check was O(n²) on it, measured on the largest ring only
  const b = await measure(current, r);
  const f = (x: number) => x.toFixed(1);
  const verdict = current(r) === null ? 'valid' : (current(r)!.match(/intersects itself|at most/)?.[0] ?? current(r)!);
  rows.push([name, String(r.length), verdict, a ? f(a.median) : 'n/a', a ? f(a.max) : 'n/a', f(b.median), f(b.p99), f(b.max)]);
}
const head = ['polygon', 'positions', 'answer', 'old: check ms (median)', 'old: loop delay max ms', 'new: check ms (median)', 'new: loop delay p99 ms', 'new: loop delay max ms'];
console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}`);
console.log(`(${runs} runs each, Node ${process.version}; the old check is not run over the limit: the cap refuses such a zone first)`);

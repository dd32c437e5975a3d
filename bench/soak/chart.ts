import { linear, niceTicks } from '../../console/charts.js';
import { quantileSorted } from '../common/runner.js';
import type { MinuteSample } from './verdict.js';

/**
 * The soak chart as an SVG document (pure; bench/soak/output.ts renders it to PNG): three panels
 * over the minute of the run (x, a sample at the end of each minute): RSS per process (MiB), queue
 * depth (evaluation jobs and devices waiting), publish→alert p50/p99 (ms) with the p99 target.
 * The warm-up minutes are shaded. A minute without a value leaves a gap in its line.
 */

export interface ChartInput {
  title: string;
  samples: MinuteSample[];
  warmupMinutes: number;
  p99TargetMs: number;
}

interface Series {
  name: string;
  values: number[];
  dashed?: boolean;
}

const W = 1000;
const PANEL_H = 250;
const TOP = 50;
const LEFT = 80;
const RIGHT = 210;
const PLOT_TOP = 28;
const PLOT_BOTTOM = 42;
const COLOURS = ['#1d70b8', '#d4351c', '#00703c', '#f47738', '#4c2c92', '#b58840', '#28a197', '#6f72af', '#912b88', '#505a5f'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Round y ticks from 0 (console/charts.ts niceTicks), the last at or above `max`. */
export function yTicks(max: number, count = 5): number[] {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const t = niceTicks(0, top, count);
  const step = t.length > 1 ? t[1]! - t[0]! : top;
  while (t[t.length - 1]! < top - 1e-9) t.push(Math.round((t[t.length - 1]! + step) * 1e9) / 1e9);
  return t;
}

const num = (x: number) => (Math.round(x * 10) / 10).toString();
const label = (v: number) => v.toLocaleString('en-GB', { maximumFractionDigits: 1 });

function panel(index: number, title: string, yLabel: string, series: Series[], minutes: number, warmup: number, extraMax = 0): string {
  const y0 = TOP + index * PANEL_H;
  const top = y0 + PLOT_TOP;
  const bottom = y0 + PANEL_H - PLOT_BOTTOM;
  const right = W - RIGHT;
  const finite = series.flatMap((s) => s.values.filter(Number.isFinite));
  const ticks = yTicks(Math.max(extraMax, ...finite, 0));
  const yMax = ticks[ticks.length - 1]!;
  const px = linear(0, Math.max(1, minutes), LEFT, right);
  const py = linear(0, yMax, bottom, top);
  const out: string[] = [`<g class="panel" id="panel-${index + 1}">`];
  out.push(`<text x="${LEFT}" y="${y0 + 18}" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  if (warmup > 0) {
    const wx = px(Math.min(warmup, minutes));
    out.push(`<rect x="${num(LEFT)}" y="${num(top)}" width="${num(wx - LEFT)}" height="${num(bottom - top)}" fill="#eeeeee"/>`);
    out.push(`<text x="${num((LEFT + wx) / 2)}" y="${num(top + 14)}" font-size="11" fill="#505a5f" text-anchor="middle">warm-up</text>`);
  }
  for (const v of ticks) {
    out.push(`<line x1="${LEFT}" x2="${right}" y1="${num(py(v))}" y2="${num(py(v))}" stroke="#dddddd"/>`);
    out.push(`<text x="${LEFT - 6}" y="${num(py(v) + 4)}" font-size="11" text-anchor="end">${label(v)}</text>`);
  }
  for (const m of niceTicks(0, Math.max(1, minutes), 10).filter(Number.isInteger)) {
    out.push(`<line x1="${num(px(m))}" x2="${num(px(m))}" y1="${num(bottom)}" y2="${num(bottom + 4)}" stroke="#0b0c0c"/>`);
    out.push(`<text x="${num(px(m))}" y="${num(bottom + 16)}" font-size="11" text-anchor="middle">${m}</text>`);
  }
  out.push(`<line x1="${LEFT}" x2="${right}" y1="${num(bottom)}" y2="${num(bottom)}" stroke="#0b0c0c"/>`);
  out.push(`<line x1="${LEFT}" x2="${LEFT}" y1="${num(top)}" y2="${num(bottom)}" stroke="#0b0c0c"/>`);
  out.push(`<text x="${num((LEFT + right) / 2)}" y="${num(bottom + 34)}" font-size="12" text-anchor="middle">minute of the run</text>`);
  const ly = (top + bottom) / 2;
  out.push(`<text x="${LEFT - 52}" y="${num(ly)}" font-size="12" text-anchor="middle" transform="rotate(-90 ${LEFT - 52} ${num(ly)})">${escapeXml(yLabel)}</text>`);
  series.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length]!;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1) out.push(`<polyline class="series" fill="none" stroke="${colour}" stroke-width="2"${dash} points="${run.join(' ')}"/>`);
      run = [];
    };
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v)) return flush();
      const p = `${num(px(i + 1))},${num(py(v))}`;
      run.push(p);
      if (!s.dashed) out.push(`<circle cx="${num(px(i + 1))}" cy="${num(py(v))}" r="2.5" fill="${colour}"/>`);
    });
    flush();
    const lyk = top + 6 + k * 18;
    out.push(`<line x1="${right + 16}" x2="${right + 40}" y1="${num(lyk)}" y2="${num(lyk)}" stroke="${colour}" stroke-width="2"${dash}/>`);
    out.push(`<text class="legend" x="${right + 46}" y="${num(lyk + 4)}" font-size="12">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** publish→alert p50 and p99 of one minute's alerts, NaN when none. */
export function minuteQuantiles(latencies: number[]): { p50: number; p99: number } {
  const s = Float64Array.from(latencies).sort();
  return { p50: quantileSorted(s, 0.5), p99: quantileSorted(s, 0.99) };
}

export function soakSvg(input: ChartInput): string {
  const { samples } = input;
  const minutes = samples.length;
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.rssMiB)))];
  const q = samples.map((s) => minuteQuantiles(s.latencies));
  const height = TOP + 3 * PANEL_H + 10;
  const rss = names.map((name) => ({ name, values: samples.map((s) => s.rssMiB[name] ?? NaN) }));
  const queue = [
    { name: 'evaluation jobs (peak)', values: samples.map((s) => s.queueJobs) },
    { name: 'devices waiting (peak)', values: samples.map((s) => s.marks) },
  ];
  const latency = [
    { name: 'p50', values: q.map((x) => x.p50) },
    { name: 'p99', values: q.map((x) => x.p99) },
    { name: `p99 target (${input.p99TargetMs} ms)`, values: samples.map(() => input.p99TargetMs), dashed: true },
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="DejaVu Sans, Arial, sans-serif" fill="#0b0c0c">`,
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="28" font-size="17" font-weight="bold">${escapeXml(input.title)}</text>`,
    panel(0, 'Resident memory per process', 'RSS (MiB)', rss, minutes, input.warmupMinutes),
    panel(1, 'Queue depth, peak within each minute', 'jobs / devices', queue, minutes, input.warmupMinutes),
    panel(2, 'publish→alert latency of the alerts raised each minute', 'latency (ms)', latency, minutes, input.warmupMinutes, input.p99TargetMs * 1.1),
    '</svg>',
  ].join('\n');
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { stringify } from 'csv-stringify/sync';
import { minuteQuantiles, soakSvg, type ChartInput } from './chart.js';
import type { MinuteSample } from './verdict.js';

/** The soak's files: the chart as PNG (resvg renders the SVG, with the system's DejaVu fonts) and the samples as CSV. */

export function svgToPng(svg: string): Buffer {
  const r = new Resvg(svg, { background: '#ffffff', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } });
  return r.render().asPng();
}

/** One row per minute: RSS per process (MiB), queue peaks, fixes stored, alerts and their p50/p99 (ms). */
export function samplesCsv(samples: MinuteSample[]): string {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.rssMiB)))];
  const round = (x: number, dp: number) => (Number.isFinite(x) ? x.toFixed(dp) : '');
  const rows = samples.map((s) => {
    const q = minuteQuantiles(s.latencies);
    return [s.minute, ...names.map((n) => round(s.rssMiB[n] ?? NaN, 1)), s.queueJobs, s.marks, s.fixesStored, s.latencies.length, round(q.p50, 0), round(q.p99, 0)];
  });
  return stringify(rows, {
    header: true,
    columns: ['minute', ...names.map((n) => `rss_${n}_mib`), 'queue_jobs_peak', 'devices_waiting_peak', 'fixes_stored', 'alerts', 'publish_to_alert_p50_ms', 'publish_to_alert_p99_ms'],
  });
}

/** Writes `<base>.png` and `<base>.csv`; returns their paths. */
export function writeSoakFiles(pngPath: string, chart: ChartInput): { png: string; csv: string } {
  mkdirSync(dirname(pngPath), { recursive: true });
  const csv = pngPath.replace(/\.png$/i, '') + '.csv';
  writeFileSync(pngPath, svgToPng(soakSvg(chart)));
  writeFileSync(csv, samplesCsv(chart.samples));
  return { png: pngPath, csv };
}

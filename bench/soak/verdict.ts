import { quantileSorted } from '../common/runner.js';

/**
 * The soak's samples, one per minute of the run, and the "flat" verdict on them. Pure.
 *
 * Windows: minutes after the warm-up are split in thirds (at least one minute each); a series
 * is compared between the first and the last third.
 * - RSS of a process: the mean of the last third at most `rssGrowthPct` % above the first's.
 * - queue depth (evaluation jobs; devices signalled but not yet taken): bounded when the peak of
 *   the last third is at most 1.5 × the first third's peak, or at most `queueFloor` (one second
 *   of offered fixes: a backlog that small is no trend).
 * - publish→alert: the p99 of every alert raised in the last third under `p99Ms`.
 */

export interface MinuteSample {
  /** 1-based: minute m covers [t0 + (m-1)·60 s, t0 + m·60 s) */
  minute: number;
  /** resident memory per process (group) during the minute (mean of its snapshots), MiB; NaN when unknown */
  rssMiB: Record<string, number>;
  /** highest evaluation jobs waiting+active+delayed+prioritized seen during the minute */
  queueJobs: number;
  /** highest count of (device, stream) marks signalled and not yet taken by a job */
  marks: number;
  /** readings stored (received_at) during the minute */
  fixesStored: number;
  /** publish→alert of the alerts raised during the minute, ms */
  latencies: number[];
}

export interface FlatRules {
  warmupMinutes: number;
  rssGrowthPct: number;
  queueFloor: number;
  p99Ms: number;
}

export interface Check {
  series: string;
  /** null: not enough data to say */
  ok: boolean | null;
  detail: string;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');

export function p99(values: number[]): number {
  return quantileSorted(Float64Array.from(values).sort(), 0.99);
}

/** The first and last thirds of the minutes after the warm-up, or null when fewer than 2 minutes remain. */
export function thirds(samples: MinuteSample[], warmupMinutes: number): { first: MinuteSample[]; last: MinuteSample[] } | null {
  const after = samples.filter((s) => s.minute > warmupMinutes);
  if (after.length < 2) return null;
  const n = Math.max(1, Math.floor(after.length / 3));
  return { first: after.slice(0, n), last: after.slice(-n) };
}

export function flatness(samples: MinuteSample[], rules: FlatRules): Check[] {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.rssMiB)))];
  const t = thirds(samples, rules.warmupMinutes);
  if (!t) {
    const why = `n/a: fewer than 2 minutes after the ${rules.warmupMinutes}-minute warm-up`;
    return [...names.map((n) => `RSS ${n}`), 'queue depth (jobs)', 'devices waiting (marks)', 'publish→alert p99'].map((series) => ({ series, ok: null, detail: why }));
  }
  const span = (w: MinuteSample[]) => (w.length === 1 ? `minute ${w[0]!.minute}` : `minutes ${w[0]!.minute}-${w[w.length - 1]!.minute}`);
  const windows = `${span(t.first)} vs ${span(t.last)}`;
  const out: Check[] = [];
  for (const name of names) {
    const first = t.first.map((s) => s.rssMiB[name] ?? NaN).filter(Number.isFinite);
    const last = t.last.map((s) => s.rssMiB[name] ?? NaN).filter(Number.isFinite);
    if (!first.length || !last.length) {
      out.push({ series: `RSS ${name}`, ok: null, detail: 'n/a: process not sampled' });
      continue;
    }
    const growth = ((mean(last) - mean(first)) / mean(first)) * 100;
    out.push({
      series: `RSS ${name}`,
      ok: growth < rules.rssGrowthPct,
      detail: `${mean(first).toFixed(1)} → ${mean(last).toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %, limit +${rules.rssGrowthPct} %; ${windows})`,
    });
  }
  for (const [series, pick] of [
    ['queue depth (jobs)', (s: MinuteSample) => s.queueJobs],
    ['devices waiting (marks)', (s: MinuteSample) => s.marks],
  ] as const) {
    const peakFirst = Math.max(...t.first.map(pick));
    const peakLast = Math.max(...t.last.map(pick));
    const bound = Math.max(1.5 * peakFirst, rules.queueFloor);
    out.push({ series, ok: peakLast <= bound, detail: `peak ${f0(peakFirst)} → ${f0(peakLast)} (bound ${f0(bound)}: 1.5 × first peak or ${f0(rules.queueFloor)}; ${windows})` });
  }
  const lastLat = t.last.flatMap((s) => s.latencies);
  const firstLat = t.first.flatMap((s) => s.latencies);
  const p = p99(lastLat);
  out.push({
    series: 'publish→alert p99',
    ok: lastLat.length ? p < rules.p99Ms : null,
    detail: lastLat.length
      ? `${f0(p99(firstLat))} → ${f0(p)} ms over ${firstLat.length} / ${lastLat.length} alerts (last third < ${rules.p99Ms} ms; ${windows})`
      : `n/a: no alert raised in ${span(t.last)}`,
  });
  return out;
}

/** Per key, the mean of the finite values (NaN when none). */
export function meanOf(snapshots: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set(snapshots.flatMap((s) => Object.keys(s)))) {
    const xs = snapshots.map((s) => s[k] ?? NaN).filter(Number.isFinite);
    out[k] = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  }
  return out;
}

export const checkLine = (c: Check) => `${c.ok === null ? 'N/A ' : c.ok ? 'PASS' : 'FAIL'}  ${c.series}: ${c.detail}`;

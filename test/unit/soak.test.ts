import { describe, expect, it } from 'vitest';
import { soakSvg, yTicks } from '../../bench/soak/chart.js';
import { samplesCsv, svgToPng } from '../../bench/soak/output.js';
import { expectedBreaches, soakPlan } from '../../bench/soak/plan.js';
import { flatness, meanOf, thirds, type FlatRules, type MinuteSample } from '../../bench/soak/verdict.js';

/** bench:soak's pure parts: the flat verdict, the chart's SVG (and its PNG), the CSV, the spread of breaches. */

const RULES: FlatRules = { warmupMinutes: 2, rssGrowthPct: 10, queueFloor: 2000, p99Ms: 2000 };

/** `minutes` samples; each field a function of the minute (1-based). */
function series(minutes: number, f: { rss?: (m: number) => Record<string, number>; jobs?: (m: number) => number; marks?: (m: number) => number; lat?: (m: number) => number[] } = {}): MinuteSample[] {
  return Array.from({ length: minutes }, (_, i) => {
    const m = i + 1;
    return {
      minute: m,
      rssMiB: f.rss?.(m) ?? { ingest: 150, worker: 200 },
      queueJobs: f.jobs?.(m) ?? 20,
      marks: f.marks?.(m) ?? 50,
      fixesStored: 120_000,
      latencies: f.lat?.(m) ?? Array.from({ length: 100 }, (_, k) => 100 + k * 5),
    };
  });
}

const byName = (checks: ReturnType<typeof flatness>) => new Map(checks.map((c) => [c.series, c]));

describe('bench:soak flat verdict (bench/soak/verdict.ts)', () => {
  it('compares the first and last thirds of the minutes after the warm-up', () => {
    const t = thirds(series(30), 2)!;
    expect(t.first.map((s) => s.minute)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(t.last.map((s) => s.minute)).toEqual([22, 23, 24, 25, 26, 27, 28, 29, 30]);
    expect(thirds(series(4), 2)!.first.map((s) => s.minute)).toEqual([3]);
    expect(thirds(series(4), 2)!.last.map((s) => s.minute)).toEqual([4]);
  });

  it('passes every series of a flat run, whatever the warm-up did', () => {
    const checks = flatness(series(30, { rss: (m) => ({ ingest: m <= 2 ? 400 : 150 + (m % 3), worker: 200 }), jobs: (m) => (m <= 2 ? 50_000 : 20) }), RULES);
    expect(checks.map((c) => [c.series, c.ok])).toEqual([
      ['RSS ingest', true],
      ['RSS worker', true],
      ['queue depth (jobs)', true],
      ['devices waiting (marks)', true],
      ['publish→alert p99', true],
    ]);
    expect(byName(checks).get('RSS ingest')!.detail).toContain('minutes 3-11 vs minutes 22-30');
  });

  it('fails a process whose memory grows 10 % or more between the thirds, and only that one', () => {
    // worker: +1 MiB a minute from 200 MiB: +9.2 % between the thirds, just under the limit
    const checks = byName(flatness(series(30, { rss: (m) => ({ ingest: 150, worker: 200 + m }) }), RULES));
    expect(checks.get('RSS worker')!.ok).toBe(true);
    expect(checks.get('RSS worker')!.detail).toMatch(/207\.0 → 226\.0 MiB \(\+9\.2 %/);
    // at 2 MiB a minute (+17 %) it fails
    const steeper = byName(flatness(series(30, { rss: (m) => ({ ingest: 150, worker: 200 + 2 * m }) }), RULES));
    expect(steeper.get('RSS worker')!.ok).toBe(false);
    expect(steeper.get('RSS ingest')!.ok).toBe(true);
  });

  it('calls a queue that keeps growing unbounded, and a small wobbling one bounded', () => {
    const growing = byName(flatness(series(30, { jobs: (m) => 500 * m }), RULES));
    expect(growing.get('queue depth (jobs)')!.ok).toBe(false);
    const small = byName(flatness(series(30, { marks: (m) => (m % 2 ? 10 : 1500) }), RULES));
    expect(small.get('devices waiting (marks)')!.ok).toBe(true);
  });

  it('judges publish→alert on the p99 of every alert raised in the last third', () => {
    const slow = byName(flatness(series(30, { lat: (m) => (m >= 22 ? [...Array(98).fill(300), 2500, 2600] : [300]) }), RULES));
    expect(slow.get('publish→alert p99')!.ok).toBe(false);
    expect(slow.get('publish→alert p99')!.detail).toContain('2500 ms');
    const none = byName(flatness(series(30, { lat: (m) => (m >= 22 ? [] : [300]) }), RULES));
    expect(none.get('publish→alert p99')!.ok).toBeNull();
  });

  it('says n/a for every series when fewer than two minutes follow the warm-up', () => {
    const checks = flatness(series(3), RULES);
    expect(checks.every((c) => c.ok === null && c.detail.startsWith('n/a'))).toBe(true);
    expect(checks.map((c) => c.series)).toContain('RSS worker');
  });

  it('averages memory snapshots per process, ignoring a process that was gone', () => {
    expect(meanOf([{ a: 1, b: NaN }, { a: 3, b: 4 }, { a: 5 }])).toEqual({ a: 3, b: 4 });
    expect(meanOf([{ a: NaN }]).a).toBeNaN();
  });
});

describe('bench:soak chart (bench/soak/chart.ts, output.ts)', () => {
  const samples = series(5, { rss: (m) => ({ ingest: 150, 'worker <1>': m === 3 ? NaN : 200 }), lat: (m) => (m === 1 ? [] : [100, 200]) });
  const svg = soakSvg({ title: 'soak & test', samples, warmupMinutes: 2, p99TargetMs: 2000 });

  it('draws three panels with labelled axes (units) and a legend entry per series', () => {
    expect(svg.match(/<g class="panel"/g)).toHaveLength(3);
    for (const text of ['RSS (MiB)', 'jobs / devices', 'latency (ms)', 'minute of the run', 'warm-up', 'p99 target (2000 ms)']) expect(svg).toContain(`>${text}<`);
    const legend = [...svg.matchAll(/<text class="legend"[^>]*>([^<]*)</g)].map((m) => m[1]);
    expect(legend).toEqual(['ingest', 'worker &lt;1&gt;', 'evaluation jobs (peak)', 'devices waiting (peak)', 'p50', 'p99', 'p99 target (2000 ms)']);
    expect(svg).toContain('soak &amp; test');
  });

  it('breaks a line where a minute has no value', () => {
    const lines = [...svg.matchAll(/<polyline class="series"[^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length);
    // panel 1: ingest 5 points; worker 2 + 2 around the gap; panel 2: 5 + 5; panel 3: p50 and p99 from minute 2, target 5
    expect(lines).toEqual([5, 2, 2, 5, 5, 4, 4, 5]);
  });

  it('ends the y axis at or above the largest value', () => {
    expect(yTicks(2200)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
    expect(yTicks(0)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(yTicks(226).at(-1)).toBeGreaterThanOrEqual(226);
  });

  it('renders to a PNG of the SVG’s size', () => {
    const png = svgToPng(svg);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1000); // IHDR width
    expect(png.readUInt32BE(20)).toBe(Number(/height="(\d+)"/.exec(svg)![1]));
  });

  it('writes one CSV row per minute with empty cells for missing values', () => {
    const lines = samplesCsv(samples).trim().split('\n');
    expect(lines[0]).toBe('minute,rss_ingest_mib,rss_worker <1>_mib,queue_jobs_peak,devices_waiting_peak,fixes_stored,alerts,publish_to_alert_p50_ms,publish_to_alert_p99_ms');
    expect(lines[1]).toBe('1,150.0,200.0,20,50,120000,0,,');
    expect(lines[3]).toBe('3,150.0,,20,50,120000,2,100,200');
  });
});

describe('bench:soak plan (bench/soak/plan.ts)', () => {
  it('spreads the breaches over the run: every minute after the first has alerts due, each by a subject of its own', () => {
    const minutes = 30;
    const p = soakPlan({ devices: 20_000, intervalMs: 10_000, durationMs: minutes * 60_000, breachesPerMinute: 100, seed: 1 }, 'x');
    expect(p.breaches).toBe(3000);
    const truth = expectedBreaches(p, 0, 10_000);
    expect(truth.size).toBe(3000);
    const perMinute = new Array<number>(minutes).fill(0);
    for (const t of truth.values()) perMinute[Math.floor(t.provenAt / 60_000)]!++;
    expect(perMinute[0]).toBe(0); // the grace is 60 s
    // minute 2 from 80 s (two outside fixes, then 60 s of grace), the last up to the final walk's end
    for (const n of perMinute.slice(1)) expect(n).toBeGreaterThanOrEqual(70);
    for (const n of perMinute.slice(2, -1)) expect(n).toBeGreaterThanOrEqual(100);
    // every breach ends inside the run
    for (const d of p.fleet) if (d.breach) expect(d.breach.toK).toBeLessThanOrEqual(p.fixesPerDevice);
  });

  it('keeps a short run possible and refuses one too short for a breach', () => {
    const p = soakPlan({ devices: 1000, intervalMs: 10_000, durationMs: 180_000, breachesPerMinute: 5, seed: 1 }, 'x');
    expect(p.breaches).toBe(15);
    expect(() => soakPlan({ devices: 1000, intervalMs: 10_000, durationMs: 60_000, breachesPerMinute: 5, seed: 1 }, 'x')).toThrow(/at least 10 fixes/);
  });
});

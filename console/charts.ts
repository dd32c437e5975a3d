import { DateTime } from 'luxon';

/**
 * Geometry of the console's server-rendered SVG charts (console/views/macros/charts.njk draws
 * them): pure, no DOM, no script. Coordinates are SVG user units (px at 1:1), y grows downwards.
 * Every chart has a text alternative on its page (a table of the same figures).
 */

export interface Box { x: number; y: number; w: number; h: number }
export interface AxisTick { at: number; label: string }

/** A linear map from [d0, d1] to [r0, r1]. */
export function linear(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** About `count` round steps (1, 2, 2.5, 5 × 10^n) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e9) / 1e9 || 0);
  return out;
}

const round = (v: number) => Math.round(v * 10) / 10;

export interface BarInput { value: number | null; lo?: number | null; hi?: number | null }
export interface Bar { series: number; x: number; y: number; w: number; h: number; missing: boolean; err: { x: number; y1: number; y2: number; c0: number; c1: number } | null }

/**
 * Vertical bars in groups (one group per x label, one bar per series), each with an optional
 * error bar [lo, hi]; values in [0, yMax]. A missing value leaves a gap marked on the axis.
 */
export function groupedBars(groups: Array<{ label: string; bars: BarInput[] }>, series: number, opts: { width?: number; height?: number; yMax: number; yLabel: (v: number) => string }) {
  const width = opts.width ?? 720;
  const height = opts.height ?? 320;
  const plot: Box = { x: 56, y: 16, w: width - 72, h: height - 64 };
  const y = linear(0, opts.yMax, plot.y + plot.h, plot.y);
  const slot = plot.w / Math.max(1, groups.length);
  const barW = Math.max(4, Math.min(40, (slot * 0.8) / Math.max(1, series)));
  return {
    width,
    height,
    plot,
    yTicks: niceTicks(0, opts.yMax, 5).map((v) => ({ at: round(y(v)), label: opts.yLabel(v) })),
    groups: groups.map((g, gi) => {
      const x0 = plot.x + gi * slot + (slot - barW * series) / 2;
      return {
        label: g.label,
        at: round(plot.x + gi * slot + slot / 2),
        bars: g.bars.map((b, si): Bar => {
          const x = round(x0 + si * barW);
          if (b.value === null) return { series: si, x, y: plot.y + plot.h - 2, w: round(barW - 2), h: 2, missing: true, err: null };
          const top = round(y(Math.min(b.value, opts.yMax)));
          const mid = round(x + (barW - 2) / 2);
          const err = b.lo != null && b.hi != null ? { x: mid, y1: round(y(b.hi)), y2: round(y(b.lo)), c0: round(mid - 5), c1: round(mid + 5) } : null;
          return { series: si, x, y: top, w: round(barW - 2), h: round(plot.y + plot.h - top), missing: false, err };
        }),
      };
    }),
  };
}

/**
 * Horizontal bars, one row per label, with an optional second value drawn as a marker (the p90
 * beside a p50 bar). Values in [0, max]; max 0 (nothing to show) draws an empty axis.
 */
export function horizontalBars(rows: Array<{ label: string; value: number | null; marker?: number | null; text: string }>, opts: { width?: number; xLabel: (v: number) => string; max?: number }) {
  const width = opts.width ?? 720;
  const rowH = 28;
  const plot: Box = { x: 160, y: 8, w: width - 300, h: Math.max(1, rows.length) * rowH };
  const max = opts.max ?? Math.max(0, ...rows.flatMap((r) => [r.value ?? 0, r.marker ?? 0]));
  const ticks = niceTicks(0, max > 0 ? max : 1, 4);
  // the axis ends on a tick at or beyond the largest value
  if (ticks.length > 1 && ticks[ticks.length - 1]! < max) ticks.push(Math.round((2 * ticks[ticks.length - 1]! - ticks[ticks.length - 2]!) * 1e9) / 1e9);
  const top = ticks[ticks.length - 1]!;
  const x = linear(0, top, plot.x, plot.x + plot.w);
  return {
    width,
    height: plot.y + plot.h + 40,
    plot,
    xTicks: ticks.map((v) => ({ at: round(x(v)), label: opts.xLabel(v) })),
    rows: rows.map((r, i) => {
      const y0 = plot.y + i * rowH;
      return {
        label: r.label,
        text: r.text,
        y: y0 + 6,
        h: rowH - 12,
        mid: y0 + rowH / 2,
        w: r.value === null ? 0 : round(x(r.value) - plot.x),
        missing: r.value === null,
        textX: round(r.value === null ? plot.x + 4 : x(r.value) + 4),
        marker: r.marker == null ? null : round(x(r.marker)),
      };
    }),
  };
}

/**
 * A time series (device time, epoch ms) as a line with a dot at each reading, with horizontal
 * reference lines (a threshold, a baseline) and vertical marks (start, peak, end). Times are
 * labelled in `zone`.
 */
export function lineChart(
  points: Array<{ t: number; v: number }>,
  opts: { width?: number; height?: number; zone: string; refs?: Array<{ value: number; label: string }>; marks?: Array<{ t: number; label: string }>; yLabel: (v: number) => string; yMin?: number },
) {
  const width = opts.width ?? 720;
  const height = opts.height ?? 280;
  const plot: Box = { x: 64, y: 24, w: width - 96, h: height - 72 };
  const ts = points.map((p) => p.t).concat((opts.marks ?? []).map((m) => m.t));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts, t0 + 60_000);
  const vs = points.map((p) => p.v).concat((opts.refs ?? []).map((r) => r.value));
  const v0 = opts.yMin ?? Math.min(0, ...vs);
  const v1 = Math.max(...vs, v0 + 1e-6) * 1.1;
  const yt = niceTicks(v0, v1, 4);
  const x = linear(t0, t1, plot.x, plot.x + plot.w);
  const y = linear(v0, yt[yt.length - 1]! > v1 ? yt[yt.length - 1]! : v1, plot.y + plot.h, plot.y);
  const step = [15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * 60_000).find((s) => (t1 - t0) / s <= 8) ?? 2880 * 60_000;
  const xTicks: AxisTick[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    xTicks.push({ at: round(x(t)), label: DateTime.fromMillis(t, { zone: opts.zone }).toFormat(step >= 1440 * 60_000 ? 'd LLL' : 'HH:mm') });
  }
  return {
    width,
    height,
    plot,
    path: points.map((p, i) => `${i ? 'L' : 'M'}${round(x(p.t))} ${round(y(p.v))}`).join(' '),
    dots: points.map((p) => ({ x: round(x(p.t)), y: round(y(p.v)) })),
    xTicks,
    yTicks: yt.filter((v) => v >= v0).map((v) => ({ at: round(y(v)), label: opts.yLabel(v) })),
    refs: (opts.refs ?? []).map((r) => ({ at: round(y(r.value)), label: r.label })),
    marks: (opts.marks ?? []).map((m, i) => ({ at: round(x(m.t)), label: m.label, labelY: plot.y + 12 + i * 14 })),
  };
}

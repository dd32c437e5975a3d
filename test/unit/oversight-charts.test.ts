import { describe, expect, it } from 'vitest';
import { groupedBars, horizontalBars, lineChart, niceTicks } from '../../console/charts.js';
import { safeCell, toCsv } from '../../console/csv.js';
import { duration } from '../../console/oversight.present.js';

describe('oversight chart geometry (console/charts.ts)', () => {
  it('picks round ticks covering the range', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 0.065, 4)).toEqual([0, 0.02, 0.04, 0.06]);
  });

  it('keeps every horizontal bar and marker inside the plot, the axis ending at or beyond the largest value', () => {
    const c = horizontalBars([{ label: 'a', value: 0.065, text: '' }, { label: 'b', value: 0.054, marker: 0.07, text: '' }, { label: 'c', value: null, text: '' }], { xLabel: String });
    for (const r of c.rows) {
      expect(r.w).toBeLessThanOrEqual(c.plot.w);
      if (r.marker !== null) expect(r.marker).toBeLessThanOrEqual(c.plot.x + c.plot.w);
    }
    expect(c.xTicks.at(-1)!.label).toBe('0.08');
    expect(c.rows[2]!.missing).toBe(true);
  });

  it('draws each interval as an error bar from its low to its high end, on the rate axis', () => {
    const c = groupedBars([{ label: 'Sep', bars: [{ value: 0.5, lo: 0.25, hi: 0.75 }, { value: null }] }], 2, { yMax: 1, yLabel: String });
    const [bar, missing] = c.groups[0]!.bars;
    const bottom = c.plot.y + c.plot.h;
    expect(bar!.y).toBeCloseTo(bottom - c.plot.h / 2, 0);
    expect(bar!.err!.y1).toBeCloseTo(bottom - c.plot.h * 0.75, 0);
    expect(bar!.err!.y2).toBeCloseTo(bottom - c.plot.h * 0.25, 0);
    expect(missing!.missing).toBe(true);
  });

  it('lays a time series left to right with its marks and reference lines', () => {
    const t0 = Date.parse('2026-11-02T18:00:00Z');
    const c = lineChart([0, 1, 2, 3].map((i) => ({ t: t0 + i * 3600_000, v: i === 2 ? 0.06 : 0 })), { zone: 'Europe/London', refs: [{ value: 0.02, label: 'Threshold' }], marks: [{ t: t0 + 2 * 3600_000, label: 'Peak' }], yLabel: String, yMin: 0 });
    expect(c.dots.map((d) => d.x)).toEqual([...c.dots.map((d) => d.x)].sort((a, b) => a - b));
    expect(c.dots[2]!.y).toBeLessThan(c.refs[0]!.at);
    expect(c.marks[0]!.at).toBe(c.dots[2]!.x);
    expect(c.xTicks.map((t) => t.label)).toContain('20:00');
  });
});

describe('oversight words and CSV', () => {
  it('writes durations for people', () => {
    expect(duration(3 * 60_000)).toBe('3 min');
    expect(duration(125 * 60_000)).toBe('2 h 05 min');
    expect(duration(76 * 3600_000)).toBe('3 days 4 h');
  });

  it('prefixes a text cell starting with = + - @ tab or CR, leaves numbers as numbers', () => {
    expect(['=1', '+1', '-1', '@x', '\tx', '\rx', 'ok'].map(safeCell)).toEqual(["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", 'ok']);
    expect(safeCell(-0.5)).toBe(-0.5);
    expect(toCsv(['a'], [['=2+2'], [null]])).toBe('"a"\r\n"\'=2+2"\r\n""\r\n');
  });
});

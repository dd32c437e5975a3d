import { describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { DEFAULT_INTEGRITY, fittedMinutes, hourTable, HOUR_MS, monitoringGap, type Fitting, type HourCount, type MonitoredStream } from '../../health/integrity.js';

const T = (iso: string) => Date.parse(iso);
const H = HOUR_MS;

/** counts of `stream` per hour from `from` for `n` hours, `per` each (or a function of the hour index) */
function counts(stream: MonitoredStream, from: string, n: number, per: number | ((i: number) => number)): HourCount[] {
  return Array.from({ length: n }, (_, i) => ({ stream, hour: T(from) + i * H, received: typeof per === 'number' ? per : per(i) }));
}

describe('fittedMinutes: the union of fittings able to report a stream, within [from, to)', () => {
  const from = T('2026-12-02T10:00:00Z');
  it.each([
    ['no device fitted', [], 'gps', 0],
    ['fitted all hour', [{ start: from - H, end: null, kind: 'gps' }], 'gps', 60],
    ['fitted at 10:20 (a fitting starting mid-hour)', [{ start: from + 20 * 60_000, end: null, kind: 'gps' }], 'gps', 40],
    ['ended at 10:45', [{ start: from - H, end: from + 45 * 60_000, kind: 'combined' }], 'alcohol', 45],
    ['a gps tag counts nothing for alcohol', [{ start: from - H, end: null, kind: 'gps' }], 'alcohol', 0],
    ['a combined tag counts for gps', [{ start: from - H, end: null, kind: 'combined' }], 'gps', 60],
    [
      'a swap: two gps tags overlapping 10:10–10:30 are not counted twice',
      [
        { start: from - H, end: from + 30 * 60_000, kind: 'gps' },
        { start: from + 10 * 60_000, end: null, kind: 'gps' },
      ],
      'gps',
      60,
    ],
  ] as const)('%s', (_why, fittings, stream, minutes) => {
    expect(fittedMinutes(fittings as unknown as Fitting[], stream, from, from + H)).toBe(minutes);
  });
});

describe('hourTable: expected vs received per stream and UTC hour', () => {
  it('prorates the hour a fitting starts in (fitted at 10:20: 40 minutes, 2.67 fixes, 1.33 readings) and leaves a stream not fitted as null', () => {
    const fittings: Fitting[] = [{ start: T('2026-12-02T10:20:00Z'), end: null, kind: 'combined' }];
    const rows = hourTable(fittings, [...counts('gps', '2026-12-02T10:00:00Z', 2, 4), { stream: 'alcohol', hour: T('2026-12-02T11:00:00Z'), received: 1 }], T('2026-12-02T09:00:00Z'), T('2026-12-02T12:00:00Z'), T('2026-12-02T13:00:00Z'));
    expect(rows).toEqual([
      { hour: T('2026-12-02T09:00:00Z'), gps: null, alcohol: null },
      { hour: T('2026-12-02T10:00:00Z'), gps: { fitted_minutes: 40, expected: 2.67, received: 4 }, alcohol: { fitted_minutes: 40, expected: 1.33, received: 0 } },
      { hour: T('2026-12-02T11:00:00Z'), gps: { fitted_minutes: 60, expected: 4, received: 4 }, alcohol: { fitted_minutes: 60, expected: 2, received: 1 } },
    ]);
  });

  it('stops at now and counts only the minutes of the current hour that have passed', () => {
    const fittings: Fitting[] = [{ start: T('2026-12-02T00:00:00Z'), end: null, kind: 'gps' }];
    const rows = hourTable(fittings, [], T('2026-12-02T10:00:00Z'), T('2026-12-02T14:00:00Z'), T('2026-12-02T11:30:00Z'));
    expect(rows.map((r) => [new Date(r.hour).toISOString(), r.gps?.expected])).toEqual([
      ['2026-12-02T10:00:00.000Z', 4],
      ['2026-12-02T11:00:00.000Z', 2],
    ]);
  });

  it.each([
    // Europe/London: clocks go forward on 29 March 2026 (23 local hours), back on 25 October 2026 (25)
    ['spring forward', '2026-03-29', 23, ['00:00+00:00', '02:00+01:00']],
    ['fall back', '2026-10-25', 25, ['01:00+01:00', '01:00+00:00']],
  ])('a local day across a DST change (%s) has its real number of hours, each of 60 minutes and 4 fixes', (_why, date, n, around) => {
    const start = DateTime.fromISO(date, { zone: 'Europe/London' });
    const from = start.toMillis();
    const to = start.plus({ days: 1 }).toMillis();
    const fittings: Fitting[] = [{ start: from - 10 * H, end: null, kind: 'gps' }];
    const rows = hourTable(fittings, counts('gps', new Date(from).toISOString(), n, 4), from, to, to + H);
    expect(rows).toHaveLength(n);
    expect(rows.every((r) => r.gps?.expected === 4 && r.gps.received === 4)).toBe(true);
    const local = rows.map((r) => DateTime.fromMillis(r.hour, { zone: 'Europe/London' }).toFormat('HH:mmZZ'));
    expect(local.slice(0, 3).join(' ')).toContain(around.join(' '));
  });
});

describe('monitoringGap: is the subject in a gap at now', () => {
  const fitted: Fitting[] = [{ start: T('2026-12-01T00:00:00Z'), end: null, kind: 'combined' }];
  const healthy = [...counts('gps', '2026-12-01T10:00:00Z', 25, 12), ...counts('alcohol', '2026-12-01T10:00:00Z', 25, 2)];
  const at = (iso: string) => T(iso);
  const without = (stream: MonitoredStream, hour: string) => healthy.map((c) => (c.stream === stream && c.hour === T(hour) ? { ...c, received: 0 } : c));

  it.each([
    ['fixes and readings as expected', fitted, healthy, at('2026-12-02T10:10:00Z'), false, false, []],
    ['the tag reports but no fix in the last full hour (judged at 10:10: the last full hour)', fitted, without('gps', '2026-12-02T09:00:00Z'), at('2026-12-02T10:10:00Z'), true, false, []],
    ['no fix in the current hour once 30 minutes of it have passed', fitted, without('gps', '2026-12-02T10:00:00Z'), at('2026-12-02T10:40:00Z'), true, false, []],
    ['the current hour is judged once half passed, so an earlier gap no longer counts', fitted, without('gps', '2026-12-02T09:00:00Z'), at('2026-12-02T10:40:00Z'), false, false, []],
    ['one alcohol reading in the hour is half of expected: not thin', fitted, healthy.map((c) => (c.stream === 'alcohol' && c.hour === T('2026-12-02T09:00:00Z') ? { ...c, received: 1 } : c)), at('2026-12-02T10:10:00Z'), false, false, []],
    ['no alcohol reading in the last full hour', fitted, without('alcohol', '2026-12-02T09:00:00Z'), at('2026-12-02T10:10:00Z'), false, true, ['below_expected_last_hour']],
    ['no device fitted', [], [], at('2026-12-02T10:10:00Z'), false, false, []],
    ['fitted at 10:00, judged at 10:10: too little of any hour fitted to judge', [{ start: T('2026-12-02T10:00:00Z'), end: null, kind: 'combined' }], [], at('2026-12-02T10:10:00Z'), false, false, []],
    ['fitted at 10:00, judged at 10:35 with nothing received', [{ start: T('2026-12-02T10:00:00Z'), end: null, kind: 'combined' }], [], at('2026-12-02T10:35:00Z'), true, true, ['below_expected_last_hour']],
  ] as const)('%s', (_why, fittings, hourCounts, now, gps, alcohol, alcoholReasons) => {
    const g = monitoringGap(fittings as unknown as Fitting[], hourCounts as unknown as HourCount[], now);
    expect({ gps: g.gps.gap, alcohol: g.alcohol.gap, any: g.gap }).toEqual({ gps, alcohol, any: gps || alcohol });
    expect(g.alcohol.reasons).toEqual(alcoholReasons);
  });

  it('names the judged hour and its figures', () => {
    const g = monitoringGap(fitted, without('gps', '2026-12-02T09:00:00Z'), at('2026-12-02T10:10:00Z'));
    expect(g.gps.judged).toEqual({ hour: T('2026-12-02T09:00:00Z'), fitted_minutes: 60, expected: 4, received: 0 });
    expect(g.gps.reasons).toEqual(['below_expected_last_hour']);
  });

  it.each([
    // 24 judged hours: 20 must not be thin (contract §4: 20 h a day)
    ['4 empty hours of 24: 20 covered, on the rule', 4, false],
    ['5 empty hours of 24: 19 covered, heading below 20 h a day', 5, true],
    ['readings every 2 hours (alternate hours empty)', 12, true],
  ])('alcohol thinning over the last 24 full hours: %s', (_why, empty, gap) => {
    // empty hours early in the window, the last full hour and the current one healthy
    const c = healthy.map((x) => (x.stream === 'alcohol' && x.hour >= T('2026-12-01T10:00:00Z') && x.hour < T('2026-12-01T10:00:00Z') + empty * 2 * H && ((x.hour - T('2026-12-01T10:00:00Z')) / H) % 2 === 0 ? { ...x, received: 0 } : x));
    const g = monitoringGap(fitted, c, at('2026-12-02T10:10:00Z'));
    expect(g.alcohol.fitted_hours_24h).toBe(24);
    expect(g.alcohol.covered_hours_24h).toBe(24 - empty);
    expect(g.alcohol.gap).toBe(gap);
    expect(g.alcohol.reasons).toEqual(gap ? ['alcohol_coverage_below_day_rule'] : []);
    expect(g.gps.gap).toBe(false);
  });

  it('scales the day rule to the hours fitted (fitted 6 hours ago, 2 of them empty: 4 of 6 < 20 of 24)', () => {
    const f: Fitting[] = [{ start: T('2026-12-02T04:00:00Z'), end: null, kind: 'alcohol' }];
    const c = counts('alcohol', '2026-12-02T04:00:00Z', 7, (i) => (i === 1 || i === 3 ? 0 : 2));
    const g = monitoringGap(f, c, at('2026-12-02T10:10:00Z'));
    expect([g.alcohol.fitted_hours_24h, g.alcohol.covered_hours_24h, g.alcohol.gap]).toEqual([6, 4, true]);
    expect(g.gps).toEqual({ gap: false, reasons: [], judged: null });
  });

  it('uses its parameters (a fix every 5 minutes expected: 6 fixes an hour is under half of 12)', () => {
    const c = healthy.map((x) => (x.stream === 'gps' ? { ...x, received: 5 } : x));
    expect(monitoringGap(fitted, c, at('2026-12-02T10:10:00Z')).gps.gap).toBe(false);
    expect(monitoringGap(fitted, c, at('2026-12-02T10:10:00Z'), { ...DEFAULT_INTEGRITY, gpsFixMinutes: 5 }).gps.gap).toBe(true);
  });
});

import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classifySubject, type AlcoholReadingIn } from '../../alcohol/classify.js';
import { findEvents } from '../../alcohol/events.js';
import { findObstructions } from '../../alcohol/tamper.js';
import { DEFAULT_PARAMS as P, paramsVersion } from '../../alcohol/params.js';
import { soberRate, wilson } from '../../alcohol/rate.js';
import { localDays, monthSplit } from '../../alcohol/days.js';

const MIN = 60_000;
const H = 60 * MIN;
const at = (iso: string) => Date.parse(iso);

/** Readings every `stepMin` minutes from `from` for `hours`, sober, with steady IR and temperature. */
function wear(from: number, hours: number, stepMin = 30, over: (t: number, i: number) => Partial<AlcoholReadingIn> = () => ({})): AlcoholReadingIn[] {
  const out: AlcoholReadingIn[] = [];
  for (let i = 0, t = from; t < from + hours * H; i++, t += stepMin * MIN) out.push({ ts: t, tac: 0, ir: 1.1 + 0.05 * Math.sin(i), temp_c: 31 + Math.cos(i), ...over(t, i) });
  return out;
}

const events = (tac: number[], stepMin = 30) => findEvents(tac.map((_, i) => i * stepMin * MIN), tac, P).map((e) => [e.kind, e.positives, (e.end - e.start) / MIN, e.peak, e.ongoing]);

describe('drinking events and interference', () => {
  it.each([
    ['a one-reading spike is interference', [0, 0, 0.05, 0, 0, 0], [['interference', 1, 0, 0.05, false]]],
    ['three positives over 60 min is a drinking event', [0, 0.03, 0.06, 0.04, 0, 0], [['drinking', 3, 60, 0.06, false]]],
    ['three positives over 50 min is interference', [0, 0.03, 0.06, 0.04, 0, 0], [['interference', 3, 50, 0.06, false]], 25],
    ['one dip below 0.020 does not break the run', [0.03, 0.05, 0.01, 0.04, 0.03, 0, 0], [['drinking', 4, 120, 0.05, false]]],
    ['two consecutive dips break it', [0.03, 0.05, 0.01, 0.0, 0.04, 0.03, 0, 0], [['interference', 2, 30, 0.05, false], ['interference', 2, 30, 0.04, false]]],
    ['a run still rising at the last reading is an event once it qualifies', [0, 0.02, 0.04, 0.08], [['drinking', 3, 60, 0.08, true]]],
    ['an unfinished short run is not decided yet', [0, 0, 0.04], []],
    ['exactly 0.020 counts', [0.02, 0.02, 0.02, 0, 0], [['drinking', 3, 60, 0.02, false]]],
  ])('%s', (_n, tac, expected, step = 30) => expect(events(tac as number[], step as number)).toEqual(expected));
});

describe('obstructions and removals', () => {
  const base = at('2026-11-01T00:00:00Z');
  const series = (abnormalFrom: number, minutes: number, ir: number, tempDrop = 0) =>
    wear(base, 48, 30, (t) => (t >= abnormalFrom && t < abnormalFrom + minutes * MIN ? { ir, temp_c: 31 - tempDrop } : {}));
  const found = (r: AlcoholReadingIn[]) => findObstructions(r.map((x) => x.ts), r.map((x) => x.ir ?? NaN), r.map((x) => x.temp_c), P).map((o) => [o.kind, (o.end - o.start) / MIN]);

  it.each([
    ['IR low for 90 minutes is not a tamper', series(base + 30 * H, 120, 0.3), []], // 4 readings span 90 min
    ['IR low over readings spanning 2 hours is an obstruction', series(base + 30 * H, 150, 0.3), [['obstruction', 120]]],
    ['IR high (over 2x baseline) for 3 hours is an obstruction', series(base + 30 * H, 210, 2.6), [['obstruction', 180]]],
    ['IR low and the temperature 8 °C down is a removal', series(base + 30 * H, 150, 0.2, 8), [['removal', 120]]],
    ['nothing is decided in the first 24 hours of wear before a baseline exists', wear(base, 2, 30, () => ({ ir: 0.1 })).concat(wear(base + 2 * H, 4, 30)), []],
  ])('%s', (_n, readings, expected) => expect(found(readings)).toEqual(expected));

  it('a baseline needs 6 readings: the 7th reading is the first judged', () => {
    const r = wear(base, 10, 30, (_t, i) => (i >= 6 ? { ir: 0.1 } : {}));
    expect(findObstructions(r.map((x) => x.ts), r.map((x) => x.ir!), r.map((x) => x.temp_c), P)[0]!.start).toBe(r[6]!.ts);
  });
});

describe('days', () => {
  const london = 'Europe/London';
  it('an event crossing midnight makes both days drinking days', () => {
    const r = wear(at('2026-11-09T00:00:00Z'), 72, 30, (t) => (t >= at('2026-11-09T23:00:00Z') && t <= at('2026-11-10T01:30:00Z') ? { tac: 0.05 } : {}));
    const c = classifySubject(r, [[r[0]!.ts, r[r.length - 1]!.ts + 1]], '2026-11-09', '2026-11-12', london, P);
    expect(c.days.map((d) => [d.date, d.status])).toEqual([['2026-11-09', 'drinking'], ['2026-11-10', 'drinking'], ['2026-11-11', 'sober']]);
  });

  it.each([
    ['2026-03-29', 23],
    ['2026-10-25', 25],
  ])('the DST day %s has %i hours, all covered', (date, hours) => {
    const r = wear(at(`${date}T00:00:00Z`) - 2 * 24 * H, 5 * 24, 30);
    const c = classifySubject(r, [[r[0]!.ts, r[r.length - 1]!.ts + 1]], date, new Date(at(`${date}T12:00:00Z`) + 24 * H).toISOString().slice(0, 10), london, P);
    expect(c.days[0]).toMatchObject({ date, status: 'sober', covered_minutes: hours * 60 });
  });

  it('a gap of 91 minutes is not covered; one of 90 is', () => {
    const day = at('2026-11-10T00:00:00Z');
    const withGap = (gapMin: number) => [...wear(day - 2 * H, 8, 30), ...wear(day + 6 * H + gapMin * MIN, 24, 30)]; // last reading before: 05:30
    const covered = (gapMin: number) => classifySubject(withGap(gapMin - 30), [[day - 3 * H, day + 30 * H]], '2026-11-10', '2026-11-11', london, P).days[0]!.covered_minutes;
    expect(covered(90)).toBe(1440);
    expect(covered(91)).toBe(1440 - 91);
  });

  it('a day with under 20 hours covered is not monitored; tamper outranks it and drinking outranks tamper', () => {
    const day = at('2026-11-10T00:00:00Z');
    const short = wear(day - 26 * H, 26 + 19, 30);
    expect(classifySubject(short, [[day - 30 * H, day + 48 * H]], '2026-11-10', '2026-11-11', london, P).days[0]!.status).toBe('not_monitored');
    const tampered = wear(day - 26 * H, 26 + 19, 30, (t) => (t >= day + 2 * H && t < day + 5 * H ? { ir: 0.2 } : {}));
    expect(classifySubject(tampered, [[day - 30 * H, day + 48 * H]], '2026-11-10', '2026-11-11', london, P).days[0]!.status).toBe('tamper');
    const both = tampered.map((x) => (x.ts >= day + 10 * H && x.ts <= day + 12 * H ? { ...x, tac: 0.06 } : x));
    expect(classifySubject(both, [[day - 30 * H, day + 48 * H]], '2026-11-10', '2026-11-11', london, P).days[0]!.status).toBe('drinking');
  });

  it('a day half outside the assignment counts only its fitted half (not monitored), and unfitted days not at all', () => {
    const day = at('2026-11-10T00:00:00Z');
    const r = wear(day - 2 * H, 60, 30);
    const c = classifySubject(r, [[day + 12 * H, day + 72 * H]], '2026-11-09', '2026-11-12', london, P);
    expect(c.days.map((d) => [d.date, d.status, d.covered_minutes])).toEqual([['2026-11-10', 'not_monitored', 720], ['2026-11-11', 'sober', 1440]]);
  });

  it('readings out of order give the same result as in order', () => {
    const r = wear(at('2026-11-09T00:00:00Z'), 72, 30, (t, i) => (t >= at('2026-11-10T20:00:00Z') && t < at('2026-11-10T23:00:00Z') ? { tac: 0.03 + (i % 3) / 100 } : {}));
    const shuffled = [...r].sort((a, b) => ((a.ts * 7919) % 1013) - ((b.ts * 7919) % 1013));
    const f: [number, number][] = [[r[0]!.ts, r[r.length - 1]!.ts + 1]];
    expect(classifySubject(shuffled, f, '2026-11-09', '2026-11-12', london, P)).toEqual(classifySubject(r, f, '2026-11-09', '2026-11-12', london, P));
  });
});

describe('monthSplit: whole months and edge days of a period', () => {
  it.each([
    ['2025-01-01', '2026-01-01', { months: ['2025-01-01', '2026-01-01'], edges: [['2025-01-01', '2025-01-01'], ['2026-01-01', '2026-01-01']] }],
    ['2025-01-15', '2025-04-10', { months: ['2025-02-01', '2025-04-01'], edges: [['2025-01-15', '2025-02-01'], ['2025-04-01', '2025-04-10']] }],
    ['2025-12-31', '2026-02-01', { months: ['2026-01-01', '2026-02-01'], edges: [['2025-12-31', '2026-01-01'], ['2026-02-01', '2026-02-01']] }],
    ['2025-03-15', '2025-04-10', { months: ['2025-03-15', '2025-03-15'], edges: [['2025-03-15', '2025-04-10'], ['2025-04-10', '2025-04-10']] }],
    ['2025-03-15', '2025-03-20', { months: ['2025-03-15', '2025-03-15'], edges: [['2025-03-15', '2025-03-20'], ['2025-03-20', '2025-03-20']] }],
    ['2025-03-01', '2025-03-31', { months: ['2025-03-01', '2025-03-01'], edges: [['2025-03-01', '2025-03-31'], ['2025-03-31', '2025-03-31']] }],
    ['2024-02-01', '2024-03-01', { months: ['2024-02-01', '2024-03-01'], edges: [['2024-02-01', '2024-02-01'], ['2024-03-01', '2024-03-01']] }],
  ])('%s to %s', (from, to, expected) => {
    expect(monthSplit(from, to)).toEqual(expected);
  });

  it('its parts cover every day of the period exactly once, for every pair of dates over two years', () => {
    const dates = localDays('2024-11-20', '2026-02-10', 'UTC').map(([d]) => d);
    const daysOf = ([a, b]: [string, string]) => dates.filter((d) => d >= a && d < b);
    for (let i = 0; i < dates.length; i += 3) {
      for (let j = i + 1; j < dates.length; j += 7) {
        const { months, edges } = monthSplit(dates[i]!, dates[j]!);
        expect(months[0] === months[1] || (months[0].endsWith('-01') && months[1].endsWith('-01'))).toBe(true);
        const parts = [...daysOf(months), ...daysOf(edges[0]), ...daysOf(edges[1])].sort();
        expect(parts).toEqual(daysOf([dates[i]!, dates[j]!]));
      }
    }
  });
});

describe('sober-day rate', () => {
  it.each([
    [9, 10, 0.9, [0.5958, 0.9821]],
    [0, 0, null, null],
    [97, 100, 0.97, [0.9155, 0.9897]],
    [0, 5, 0, [0, 0.4345]],
  ])('%i sober of %i monitored', (s, n, rate, ci) => {
    const r = soberRate(s, n);
    expect(r.rate).toBe(rate);
    if (ci === null) expect(r.ci95).toBeNull();
    else r.ci95!.forEach((v, i) => expect(v).toBeCloseTo((ci as number[])[i]!, 4));
    expect(wilson(s, n)).toEqual(r.ci95);
  });
  it('parameters have a stable version', () => {
    expect(paramsVersion(P)).toMatch(/^[0-9a-f]{16}$/);
    expect(paramsVersion({ ...P })).toBe(paramsVersion(P));
    expect(paramsVersion({ ...P, tac_threshold: 0.03 })).not.toBe(paramsVersion(P));
  });
});

describe('the 13 real recordings in test/fixtures/barcrawl', () => {
  const dir = fileURLToPath(new URL('../fixtures/barcrawl/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.csv'));
  it('are all there', () => expect(files).toHaveLength(13));
  it.each(files)('%s: one drinking event or more, no tamper', (f) => {
    const r = readFileSync(dir + f, 'utf8').trim().split('\n').slice(1).map((l) => {
      const [ts, tac, ir, temp] = l.split(',');
      return { ts: Date.parse(ts!), tac: Number(tac), ir: Number(ir), temp_c: Number(temp) };
    });
    const first = r[0]!.ts;
    const last = r[r.length - 1]!.ts;
    const c = classifySubject(r, [[first, last + 1]], new Date(first).toISOString().slice(0, 10), new Date(last + 86400_000).toISOString().slice(0, 10), 'UTC', P);
    expect(c.events.filter((e) => e.kind === 'drinking').length).toBeGreaterThanOrEqual(1);
    expect(c.tampers).toEqual([]);
  });
});

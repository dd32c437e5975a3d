import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classifySubject, type AlcoholReadingIn } from '../../alcohol/classify.js';
import { findEvents } from '../../alcohol/events.js';
import { findObstructions } from '../../alcohol/tamper.js';
import { DEFAULT_PARAMS as P, paramsVersion } from '../../alcohol/params.js';
import { soberRate, wilson } from '../../alcohol/rate.js';
import { eventStanding, localDays, monthSplit, reviewDay, type EventReview } from '../../alcohol/days.js';
import { ratesOfDays } from '../../alcohol/rate.js';

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

describe('review: reviewed figures beside the automatic ones (contract 1.1 §4)', () => {
  const london = 'Europe/London';
  const day = at('2026-11-10T00:00:00Z'); // November: London local days are UTC days
  const fitted: [number, number][] = [[day - 30 * H, day + 72 * H]];
  const drink = (from: number, to: number) => (t: number) => (t >= from && t <= to ? { tac: 0.06 } : {});
  const rev = (alert_id: string, kind: EventReview['kind'], start: number, end: number, status: EventReview['status']): EventReview => ({ alert_id, kind, start, end, status });
  const dayOf = (r: AlcoholReadingIn[], reviews: EventReview[], to = '2026-11-11') => classifySubject(r, fitted, '2026-11-10', to, london, P, reviews).days;

  it.each([
    ['no review: the event counts (pending)', [], 'drinking', 1],
    ['confirmed', [rev('a1', 'drinking', day + 19 * H, day + 22 * H, 'confirmed')], 'drinking', 0],
    ['not confirmed: as if it had not happened', [rev('a1', 'drinking', day + 19 * H, day + 22 * H, 'not_confirmed')], 'sober', 0],
    ['a not-confirmed tamper does not touch a drinking event', [rev('a1', 'tamper', day + 19 * H, day + 22 * H, 'not_confirmed')], 'drinking', 1],
    ['a review of an alert that does not meet the event does not apply', [rev('a1', 'drinking', day + 23 * H, day + 23.5 * H, 'not_confirmed')], 'drinking', 1],
  ] as Array<[string, EventReview[], string, number]>)('a drinking evening on a covered day, %s', (_n, reviews, reviewed, pending) => {
    const [d] = dayOf(wear(day - 26 * H, 60, 30, drink(day + 19 * H, day + 22 * H)), reviews);
    expect(d).toMatchObject({ date: '2026-11-10', status: 'drinking', reviewed_status: reviewed, pending_events: pending, covered_minutes: 1440 });
  });

  it('a not-confirmed tamper on a day with exactly 20 h covered is sober; with 19.5 h not monitored', () => {
    const tamper = (gapH: number) => wear(day - 26 * H, 60, 30, (t) => (t >= day + 10 * H && t <= day + 12.5 * H ? { ir: 0.3 } : {})).filter((x) => x.ts <= day || x.ts >= day + gapH * H);
    const nc = [rev('t1', 'tamper', day + 10 * H, day + 12.5 * H, 'not_confirmed')];
    expect(dayOf(tamper(4), nc)[0]).toMatchObject({ status: 'tamper', reviewed_status: 'sober', covered_minutes: 1200, reviews: { t1: 'not_confirmed' } });
    expect(dayOf(tamper(4.5), nc)[0]).toMatchObject({ status: 'tamper', reviewed_status: 'not_monitored', covered_minutes: 1170 });
  });

  it('two events on one evening are judged apart: one not confirmed leaves the day drinking, with the other pending', () => {
    const r = wear(day - 26 * H, 60, 30, (t) => ({ ...drink(day + 18 * H, day + 19.5 * H)(t), ...drink(day + 21 * H, day + 22.5 * H)(t) }));
    const c = classifySubject(r, fitted, '2026-11-10', '2026-11-11', london, P, [rev('e1', 'drinking', day + 18 * H, day + 19.5 * H, 'not_confirmed')]);
    expect(c.events.filter((e) => e.kind === 'drinking').map((e) => [e.start, e.end])).toEqual([[day + 18 * H, day + 19.5 * H], [day + 21 * H, day + 22.5 * H]]);
    expect(c.days[0]).toMatchObject({ status: 'drinking', drinking_events: 2, reviewed_status: 'drinking', pending_events: 1, reviews: { e1: 'not_confirmed' } });
    const both = classifySubject(r, fitted, '2026-11-10', '2026-11-11', london, P, [rev('e1', 'drinking', day + 18 * H, day + 19.5 * H, 'not_confirmed'), rev('e2', 'drinking', day + 21 * H, day + 22.5 * H, 'not_confirmed')]);
    expect(both.days[0]).toMatchObject({ status: 'drinking', reviewed_status: 'sober', pending_events: 0 });
  });

  it('an event across midnight is pending on the day it starts only, and drinking on both days', () => {
    const r = wear(day - 26 * H, 72, 30, drink(day + 23 * H, day + 25.5 * H));
    expect(dayOf(r, [], '2026-11-12').map((d) => [d.date, d.status, d.reviewed_status, d.pending_events])).toEqual([
      ['2026-11-10', 'drinking', 'drinking', 1],
      ['2026-11-11', 'drinking', 'drinking', 0],
    ]);
    const nc = dayOf(r, [rev('x', 'drinking', day + 23 * H, day + 25.5 * H, 'not_confirmed')], '2026-11-12');
    expect(nc.map((d) => [d.status, d.reviewed_status, d.pending_events])).toEqual([['drinking', 'sober', 0], ['drinking', 'sober', 0]]);
  });

  it.each([
    [['not_confirmed', 'not_confirmed'], 'not_confirmed'],
    [['not_confirmed', 'pending'], 'pending'],
    [['confirmed', 'not_confirmed'], 'confirmed'],
    [['confirmed', 'pending'], 'pending'],
    [[], 'pending'],
  ] as Array<[EventReview['status'][], string]>)('an event met by alerts reviewed %j stands %s', (statuses, expected) => {
    const reviews = statuses.map((s, i) => rev(`a${i}`, 'drinking', 100 + i, 200, s));
    expect(eventStanding({ kind: 'drinking', start: 150, end: 300 }, reviews).status).toBe(expected);
  });

  it('reviews never change the automatic figures, and reviewDay on the stored day gives what classification gave', () => {
    const r = wear(day - 26 * H, 100, 30, (t, i) => ({ ...drink(day + 19 * H, day + 22 * H)(t), ...drink(day + 43 * H, day + 45 * H)(t), ...(t >= day + 60 * H && t < day + 63 * H ? { ir: 0.2 } : {}), ...(i % 17 === 0 ? { tac: 0.04 } : {}) }));
    const plain = classifySubject(r, fitted, '2026-11-10', '2026-11-13', london, P);
    const decisions: EventReview['status'][] = ['confirmed', 'not_confirmed', 'pending'];
    const all = [...plain.events.filter((e) => e.kind === 'drinking').map((e) => ({ kind: 'drinking' as const, e })), ...plain.tampers.map((e) => ({ kind: 'tamper' as const, e }))];
    for (let k = 0; k < 27; k++) {
      const reviews = all.map((x, i) => rev(`r${i}`, x.kind, x.e.start, x.e.end, decisions[Math.floor(k / 3 ** i) % 3]!));
      const c = classifySubject(r, fitted, '2026-11-10', '2026-11-13', london, P, reviews);
      expect(c.days.map(({ date, status, covered_minutes, drinking_events, tampers }) => ({ date, status, covered_minutes, drinking_events, tampers }))).toEqual(
        plain.days.map(({ date, status, covered_minutes, drinking_events, tampers }) => ({ date, status, covered_minutes, drinking_events, tampers })),
      );
      for (const [i, d] of c.days.entries()) {
        const [, start, end] = localDays(d.date, ['2026-11-11', '2026-11-12', '2026-11-13'][i]!, london)[0]!;
        expect(reviewDay(d.events, d.covered_minutes, start, end, reviews, P)).toEqual({ reviewed_status: d.reviewed_status, pending_events: d.pending_events, reviews: d.reviews });
      }
    }
  });

  it('both rates and the pending count from day results', () => {
    const days = [
      { status: 'sober', reviewed_status: 'sober', pending_events: 0 },
      { status: 'drinking', reviewed_status: 'drinking', pending_events: 0 },
      { status: 'tamper', reviewed_status: 'sober', pending_events: 0 },
      { status: 'drinking', reviewed_status: 'sober', pending_events: 0 },
      { status: 'drinking', reviewed_status: 'drinking', pending_events: 1 },
      { status: 'drinking', reviewed_status: 'not_monitored', pending_events: 0 },
      { status: 'not_monitored', reviewed_status: 'not_monitored', pending_events: 0 },
    ] as const;
    expect(ratesOfDays([...days])).toMatchObject({ sober_days: 1, monitored_days: 6, rate: 1 / 6, reviewed_sober_days: 3, reviewed_monitored_days: 5, reviewed_rate: 0.6, pending_events: 1 });
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

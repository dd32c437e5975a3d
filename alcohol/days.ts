import { DateTime } from 'luxon';
import type { AlcoholEvent } from './events.js';
import type { Obstruction } from './tamper.js';
import type { AlcoholParams } from './params.js';

/**
 * Day classification (contract §4). Pure. Days are calendar days in the subject's time zone
 * (23 or 25 hours on DST days); times are epoch ms. A day counts only where an
 * alcohol-capable device was fitted (`fitted` intervals); its covered time is the part of
 * [day start, day end) ∩ fitted between consecutive readings at most `max_gap_minutes` apart.
 * Status precedence: drinking > tamper > not_monitored > sober.
 */

export type DayStatus = 'sober' | 'drinking' | 'tamper' | 'not_monitored';

export interface DayResult {
  /** local date, YYYY-MM-DD */
  date: string;
  status: DayStatus;
  covered_minutes: number;
  drinking_events: number;
  tampers: number;
}

export type Interval = [start: number, end: number];

/** Local days [from, to) as [date, start ms, end ms]. */
export function localDays(fromDate: string, toDate: string, timezone: string): Array<[string, number, number]> {
  const out: Array<[string, number, number]> = [];
  let d = DateTime.fromISO(fromDate, { zone: timezone }).startOf('day');
  const end = DateTime.fromISO(toDate, { zone: timezone }).startOf('day');
  while (d < end) {
    const next = d.plus({ days: 1 });
    out.push([d.toISODate()!, d.toMillis(), next.toMillis()]);
    d = next;
  }
  return out;
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

export function classifyDays(
  ts: ArrayLike<number>,
  days: Array<[string, number, number]>,
  fitted: Interval[],
  events: AlcoholEvent[],
  tampers: Obstruction[],
  p: AlcoholParams,
): DayResult[] {
  const maxGap = p.max_gap_minutes * 60_000;
  const drinking = events.filter((e) => e.kind === 'drinking');
  const out: DayResult[] = [];
  let k = 0; // first reading pair that may touch the current day
  for (const [date, start, end] of days) {
    const fittedToday = fitted.filter(([f0, f1]) => f1 > start && f0 < end);
    if (fittedToday.length === 0) continue;
    while (k + 1 < ts.length && ts[k + 1]! <= start) k++;
    let covered = 0;
    for (let i = k; i + 1 < ts.length && ts[i]! < end; i++) {
      const a = ts[i]!;
      const b = ts[i + 1]!;
      if (b - a > maxGap || b <= start) continue;
      for (const [f0, f1] of fittedToday) covered += overlap(a, b, Math.max(start, f0), Math.min(end, f1));
    }
    // an event or tamper touches the day when its [start, end] meets [day start, day end)
    const touches = (x: { start: number; end: number }) => x.end >= start && x.start < end;
    const nDrinking = drinking.filter(touches).length;
    const nTamper = tampers.filter(touches).length;
    const status: DayStatus = nDrinking > 0 ? 'drinking' : nTamper > 0 ? 'tamper' : covered < p.monitored_min_hours * 3600_000 ? 'not_monitored' : 'sober';
    out.push({ date, status, covered_minutes: Math.round(covered / 60_000), drinking_events: nDrinking, tampers: nTamper });
  }
  return out;
}

/** A date range [from, to) of YYYY-MM-DD local dates. */
export type DateRange = [from: string, to: string];

export interface MonthSplit {
  /** the whole months inside the period: month starts in [from, to), possibly empty */
  months: DateRange;
  /** the days before the first whole month and after the last one (each possibly empty) */
  edges: [DateRange, DateRange];
}

/**
 * Splits the local days [from, to) into the whole calendar months they contain and the partial
 * months at each edge (a period inside one month is all edge). Pure; the parts are disjoint and
 * cover the period exactly: months [m0, m1) and edge days [from, m0) and [m1, to) when m0 < m1.
 */
export function monthSplit(from: string, to: string): MonthSplit {
  const m0 = from.endsWith('-01') ? from : DateTime.fromISO(from, { zone: 'UTC' }).startOf('month').plus({ months: 1 }).toISODate()!;
  const m1 = `${to.slice(0, 8)}01`;
  if (m0 < m1) return { months: [m0, m1], edges: [[from, m0], [m1, to]] };
  return { months: [from, from], edges: [[from, to], [to, to]] };
}

import { DateTime } from 'luxon';
import type { AlcoholEvent } from './events.js';
import type { Obstruction } from './tamper.js';
import type { AlcoholParams } from './params.js';

/**
 * Day classification (contract §4). Pure. Days are calendar days in the subject's time zone
 * (23 or 25 hours on DST days); times are epoch ms. A day counts only where an
 * alcohol-capable device was fitted (`fitted` intervals); its covered time is the part of
 * [day start, day end) ∩ fitted between consecutive readings at most `max_gap_minutes` apart.
 * Status precedence: drinking > tamper > not_monitored > sober. The reviewed status is the same
 * rule without the events reviewed `not_confirmed` (contract 1.1 §4).
 */

export type DayStatus = 'sober' | 'drinking' | 'tamper' | 'not_monitored';
export type ReviewStatus = 'pending' | 'confirmed' | 'not_confirmed';

/** A drinking event or a tamper (obstruction or removal) touching a day: device time, epoch ms. */
export interface DayEvent {
  kind: 'drinking' | 'tamper';
  start: number;
  end: number;
}

/**
 * The review of one alerted event (contract 1.1 §4): its alert's kind, its interval [start, end]
 * (epoch ms; end = start while the alert has no end) and its review status.
 */
export interface EventReview {
  alert_id: string;
  kind: DayEvent['kind'];
  start: number;
  end: number;
  status: ReviewStatus;
}

export interface DayResult {
  /** local date, YYYY-MM-DD */
  date: string;
  /** automatic: every event counts as real */
  status: DayStatus;
  covered_minutes: number;
  drinking_events: number;
  tampers: number;
  /** as if the `not_confirmed` events had not happened (their readings still count for coverage) */
  reviewed_status: DayStatus;
  /** events starting on this day still pending review (an event with no alert counts as pending) */
  pending_events: number;
  /** the drinking events and tampers touching the day (what a later review reclassifies it from) */
  events: DayEvent[];
  /** the review decisions used: alert id → review status */
  reviews: Record<string, ReviewStatus>;
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

/** A day's status from the events that count on it and its covered minutes (whole minutes, rounded down). */
export function dayStatus(drinking: number, tampers: number, coveredMinutes: number, p: AlcoholParams): DayStatus {
  if (drinking > 0) return 'drinking';
  if (tampers > 0) return 'tamper';
  return coveredMinutes * 60_000 < p.monitored_min_hours * 3600_000 ? 'not_monitored' : 'sober';
}

/**
 * An event's review standing: the reviews of the alerts of its kind whose interval meets the
 * event's [start, end]. No such alert: `pending` (the event counts as real, unreviewed). All of
 * them `not_confirmed`: `not_confirmed`. Otherwise `pending` if any is, else `confirmed`.
 */
export function eventStanding(e: DayEvent, reviews: EventReview[]): { status: ReviewStatus; used: EventReview[] } {
  const used = reviews.filter((r) => r.kind === e.kind && r.start <= e.end && r.end >= e.start);
  if (used.length === 0) return { status: 'pending', used };
  if (used.every((r) => r.status === 'not_confirmed')) return { status: 'not_confirmed', used };
  return { status: used.some((r) => r.status === 'pending') ? 'pending' : 'confirmed', used };
}

/**
 * The reviewed figures of one day [dayStart, dayEnd) (epoch ms) from the events touching it, its
 * covered minutes and the reviews (contract 1.1 §4): the day is classified without its
 * `not_confirmed` events; pending and confirmed ones count as real. Pure.
 */
export function reviewDay(
  events: DayEvent[],
  coveredMinutes: number,
  dayStart: number,
  dayEnd: number,
  reviews: EventReview[],
  p: AlcoholParams,
): Pick<DayResult, 'reviewed_status' | 'pending_events' | 'reviews'> {
  let drinking = 0;
  let tampers = 0;
  let pending = 0;
  const used: Record<string, ReviewStatus> = {};
  for (const e of events) {
    const s = eventStanding(e, reviews);
    for (const r of s.used) used[r.alert_id] = r.status;
    if (s.status === 'pending' && e.start >= dayStart && e.start < dayEnd) pending++;
    if (s.status === 'not_confirmed') continue;
    if (e.kind === 'drinking') drinking++;
    else tampers++;
  }
  return { reviewed_status: dayStatus(drinking, tampers, coveredMinutes, p), pending_events: pending, reviews: used };
}

export function classifyDays(
  ts: ArrayLike<number>,
  days: Array<[string, number, number]>,
  fitted: Interval[],
  events: AlcoholEvent[],
  tampers: Obstruction[],
  p: AlcoholParams,
  reviews: EventReview[] = [],
): DayResult[] {
  const maxGap = p.max_gap_minutes * 60_000;
  const all: DayEvent[] = [
    ...events.filter((e) => e.kind === 'drinking').map((e) => ({ kind: 'drinking' as const, start: e.start, end: e.end })),
    ...tampers.map((t) => ({ kind: 'tamper' as const, start: t.start, end: t.end })),
  ].sort((a, b) => a.start - b.start);
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
    const touching = all.filter((x) => x.end >= start && x.start < end);
    const nDrinking = touching.filter((x) => x.kind === 'drinking').length;
    const nTamper = touching.length - nDrinking;
    const coveredMinutes = Math.floor(covered / 60_000);
    out.push({
      date,
      status: dayStatus(nDrinking, nTamper, coveredMinutes, p),
      covered_minutes: coveredMinutes,
      drinking_events: nDrinking,
      tampers: nTamper,
      ...reviewDay(touching, coveredMinutes, start, end, reviews, p),
      events: touching,
    });
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

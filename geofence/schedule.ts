import { DateTime, IANAZone } from 'luxon';

/**
 * When a zone is enforced (contract §3): weekly windows in the subject's time zone, windows
 * that cross midnight, `active_from`/`active_to` and `exceptions`. Pure. Times are epoch
 * milliseconds (UTC); windows are wall-clock `HH:MM` in `timezone`, so on the days the clocks
 * change a 19:00–07:00 curfew lasts 11 or 13 hours of real time.
 */

export const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Day = (typeof DAYS)[number];

export interface Window {
  days: Day[];
  /** wall-clock start, HH:MM */
  start: string;
  /** wall-clock end, HH:MM; at or before `start` means the next day */
  end: string;
}

export interface Enforcement {
  timezone: string;
  /** null: always (no schedule) */
  schedule: Window[] | null;
  active_from: number | null;
  active_to: number | null;
  exceptions: Array<{ from: number; to: number }>;
}

export type Interval = [start: number, end: number];

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Why a schedule is invalid, or null. */
export function scheduleProblem(schedule: unknown, timezone: string): string | null {
  if (!IANAZone.isValidZone(timezone)) return `timezone ${timezone} is not an IANA time zone`;
  if (schedule === undefined || schedule === null) return null;
  if (!Array.isArray(schedule)) return 'schedule must be a list of windows';
  for (let i = 0; i < schedule.length; i++) {
    const w = schedule[i] as Partial<Window>;
    if (!Array.isArray(w.days) || w.days.length === 0 || !w.days.every((d) => (DAYS as readonly string[]).includes(d))) {
      return `schedule[${i}].days must list days from ${DAYS.join(', ')}`;
    }
    if (typeof w.start !== 'string' || !HHMM.test(w.start)) return `schedule[${i}].start must be HH:MM (00:00 to 23:59), got ${String(w.start)}`;
    if (typeof w.end !== 'string' || !HHMM.test(w.end)) return `schedule[${i}].end must be HH:MM (00:00 to 23:59), got ${String(w.end)}`;
  }
  return null;
}

function minutes(hhmm: string): number {
  const m = HHMM.exec(hhmm)!;
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Local wall-clock time on a local date, as epoch ms (luxon moves a time in the spring-forward gap forward). */
function localToMs(date: DateTime, minuteOfDay: number): number {
  return date.set({ hour: Math.floor(minuteOfDay / 60), minute: minuteOfDay % 60, second: 0, millisecond: 0 }).toMillis();
}

/** The schedule's window occurrences that overlap [from, to), before exceptions and active bounds. */
function windowIntervals(e: Enforcement, from: number, to: number): Interval[] {
  if (!e.schedule) return [[from, to]];
  const out: Interval[] = [];
  let day = DateTime.fromMillis(from, { zone: e.timezone }).startOf('day').minus({ days: 1 });
  const last = DateTime.fromMillis(to, { zone: e.timezone }).startOf('day');
  for (; day <= last; day = day.plus({ days: 1 })) {
    const dayName = DAYS[day.weekday - 1]!;
    for (const w of e.schedule) {
      if (!w.days.includes(dayName)) continue;
      const s = minutes(w.start);
      const en = minutes(w.end);
      const start = localToMs(day, s);
      const end = en > s ? localToMs(day, en) : localToMs(day.plus({ days: 1 }), en);
      if (end > from && start < to) out.push([Math.max(start, from), Math.min(end, to)]);
    }
  }
  return merge(out);
}

function merge(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  const out: Interval[] = [];
  for (const iv of sorted) {
    const prev = out[out.length - 1];
    if (prev && iv[0] <= prev[1]) prev[1] = Math.max(prev[1], iv[1]);
    else out.push([iv[0], iv[1]]);
  }
  return out;
}

function subtract(intervals: Interval[], cut: Interval): Interval[] {
  const out: Interval[] = [];
  for (const [s, e] of intervals) {
    if (cut[1] <= s || cut[0] >= e) out.push([s, e]);
    else {
      if (cut[0] > s) out.push([s, cut[0]]);
      if (cut[1] < e) out.push([cut[1], e]);
    }
  }
  return out;
}

/** The enforced intervals of a zone within [from, to), sorted and disjoint. */
export function enforcedIntervals(e: Enforcement, from: number, to: number): Interval[] {
  const lo = Math.max(from, e.active_from ?? -Infinity);
  const hi = Math.min(to, e.active_to ?? Infinity);
  if (!(lo < hi)) return [];
  let out = windowIntervals(e, lo, hi);
  for (const x of e.exceptions) out = subtract(out, [x.from, x.to]);
  return out;
}

/** True when the zone is enforced at `ts`. */
export function isEnforced(e: Enforcement, ts: number): boolean {
  if (e.active_from !== null && ts < e.active_from) return false;
  if (e.active_to !== null && ts >= e.active_to) return false;
  for (const x of e.exceptions) if (ts >= x.from && ts < x.to) return false;
  if (!e.schedule) return true;
  return windowIntervals(e, ts, ts + 1).length > 0;
}

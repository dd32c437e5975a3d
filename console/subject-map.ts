import { DateTime } from 'luxon';

/**
 * The subject page's map, track and replay: the period a track is read for, and a zone's
 * schedule in words. Pure (time is a parameter).
 */

/** The longest track period the page and the track endpoint read, milliseconds (7 days). */
export const TRACK_MAX_MS = 7 * 24 * 3600_000;
/** The period the page shows when none is chosen, milliseconds (the last 24 hours). */
export const TRACK_DEFAULT_MS = 24 * 3600_000;

export interface PeriodError {
  /** the form field the error is about (`from` or `to`), for the error summary's link */
  field: 'from' | 'to';
  text: string;
}
export type PeriodResult = { from: Date; to: Date; defaulted: boolean } | { errors: PeriodError[] };

const EXAMPLE = '2026-12-01T09:00';

/**
 * `from` and `to` as typed in the page's form (`YYYY-MM-DDTHH:MM`, wall-clock time in
 * `timezone`) or as RFC 3339 with an offset (the track endpoint). Both absent and
 * `allowDefault`: the last 24 hours up to `now`. The period must be non-empty and at most 7 days.
 */
export function parsePeriod(raw: { from?: unknown; to?: unknown }, timezone: string, now: Date, allowDefault: boolean): PeriodResult {
  const blank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
  if (allowDefault && blank(raw.from) && blank(raw.to)) return { from: new Date(now.getTime() - TRACK_DEFAULT_MS), to: now, defaulted: true };
  const errors: PeriodError[] = [];
  const read = (field: 'from' | 'to', label: string): Date | null => {
    const v = raw[field];
    if (blank(v)) {
      errors.push({ field, text: `Enter the ${label} date and time, for example ${EXAMPLE}` });
      return null;
    }
    const text = typeof v === 'string' ? v.trim() : '';
    const d = text.length <= 40 ? DateTime.fromISO(text, { zone: timezone }) : DateTime.invalid('too long');
    if (!d.isValid || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(text)) {
      errors.push({ field, text: `The ${label} date and time must be a real date and time, for example ${EXAMPLE}` });
      return null;
    }
    return d.toJSDate();
  };
  const from = read('from', 'start');
  const to = read('to', 'end');
  if (from && to) {
    if (!(from < to)) errors.push({ field: 'to', text: 'The end must be after the start' });
    else if (to.getTime() - from.getTime() > TRACK_MAX_MS) errors.push({ field: 'to', text: 'The period must be 7 days or shorter' });
  }
  if (errors.length || !from || !to) return { errors };
  return { from, to, defaulted: false };
}

/** The value of a `datetime-local` input for `d` in `timezone` (`YYYY-MM-DDTHH:MM`). */
export function localInput(d: Date, timezone: string): string {
  return DateTime.fromJSDate(d).setZone(timezone).toFormat("yyyy-LL-dd'T'HH:mm");
}

const DAY_NAMES: Record<string, string> = { mon: 'Monday', tue: 'Tuesday', wed: 'Wednesday', thu: 'Thursday', fri: 'Friday', sat: 'Saturday', sun: 'Sunday' };
const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function daysInWords(days: readonly string[]): string {
  const set = new Set(days);
  const sorted = WEEK.filter((d) => set.has(d));
  if (sorted.length === 7) return 'Every day';
  if (sorted.join() === 'mon,tue,wed,thu,fri') return 'Monday to Friday';
  if (sorted.join() === 'sat,sun') return 'Saturday and Sunday';
  const names = sorted.map((d) => DAY_NAMES[d] ?? d);
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : (names[0] ?? '');
}

export interface ZoneForWords {
  schedule: Array<{ days: readonly string[]; start: string; end: string }> | null;
  active_from: Date | null;
  active_to: Date | null;
  exceptions: ReadonlyArray<{ from: string; to: string }>;
  grace_s: number;
}

/** When a zone is enforced, in words: its weekly windows (subject's local time), its active period, exceptions and grace. */
export function scheduleInWords(z: ZoneForWords, timezone: string): string {
  const local = (d: Date) => DateTime.fromJSDate(d).setZone(timezone).toFormat('d LLL yyyy, HH:mm');
  const parts: string[] = [];
  if (!z.schedule || z.schedule.length === 0) parts.push('Always');
  else {
    for (const w of z.schedule) {
      const overnight = w.end <= w.start;
      parts.push(`${daysInWords(w.days)}, ${w.start} to ${w.end}${overnight ? ' the next day' : ''}`);
    }
  }
  let text = parts.join('; ');
  if (z.active_from && z.active_to) text += `, from ${local(z.active_from)} until ${local(z.active_to)}`;
  else if (z.active_from) text += `, from ${local(z.active_from)}`;
  else if (z.active_to) text += `, until ${local(z.active_to)}`;
  if (z.exceptions.length) text += ` (${z.exceptions.length} ${z.exceptions.length === 1 ? 'exception' : 'exceptions'})`;
  return `${text}. Grace ${z.grace_s} seconds.`;
}

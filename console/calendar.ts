import type { FastifyRequest } from 'fastify';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { subjectSobriety } from '../alcohol/sobriety.js';
import { hasAlcoholMonitoring } from './live.repo.js';

/**
 * The sober-day calendar of the subject page (contract §4): one month of day statuses as a grid
 * of weeks (Monday first), each day with its status in words and an abbreviation (never colour
 * alone), and the month's sober-day rate with its 95 % Wilson interval. The figures come from
 * alcohol/sobriety.ts, as GET /v1/subjects/{id}/sobriety gives them, and are audited the same way.
 */
export const STATUS_TEXT: Record<string, { abbr: string; text: string }> = {
  sober: { abbr: 'S', text: 'Sober' },
  drinking: { abbr: 'D', text: 'Drinking' },
  tamper: { abbr: 'T', text: 'Tamper' },
  not_monitored: { abbr: 'N', text: 'Not monitored (under 20 hours of readings)' },
  no_tag: { abbr: '–', text: 'No alcohol tag fitted' },
  future: { abbr: '', text: 'Not yet' },
};

export interface CalendarDay {
  date: string;
  day: number;
  status: keyof typeof STATUS_TEXT;
  /** the reviewed status when a review changed it (contract 1.1 §4), else null */
  reviewed: string | null;
}

export interface Calendar {
  month: string;
  title: string;
  weeks: Array<Array<CalendarDay | null>>;
  previous: string;
  next: string | null;
  rateText: string;
  reviewedText: string | null;
  pending: number;
  legend: Array<{ abbr: string; text: string; status: string }>;
  statusText: typeof STATUS_TEXT;
}

const pct = (x: number) => `${(x * 100).toFixed(0)} %`;

/** The rate in words and numbers, e.g. "18 sober days of 20 monitored days: 90 % (95 % confidence interval 70 % to 97 %)". */
export function rateInWords(sober: number, monitored: number, rate: number | null, ci: [number, number] | null): string {
  if (!monitored || rate === null || !ci) return 'No monitored days this month, so no sober-day rate.';
  return `${sober} sober ${sober === 1 ? 'day' : 'days'} of ${monitored} monitored ${monitored === 1 ? 'day' : 'days'}: ${pct(rate)} (95 % confidence interval ${pct(ci[0])} to ${pct(ci[1])}).`;
}

/** The month a `month=YYYY-MM` query asks for, in the subject's time zone: never after this month (default). */
export function monthOf(query: unknown, timezone: string, now: Date): DateTime {
  const current = DateTime.fromJSDate(now, { zone: timezone }).startOf('month');
  const m = typeof query === 'string' && /^\d{4}-(0[1-9]|1[0-2])$/.test(query) ? DateTime.fromISO(`${query}-01`, { zone: timezone }) : current;
  return !m.isValid || m > current || m.year < 2000 ? current : m;
}

/** The calendar grid and texts for `month`, from the days of subjectSobriety (pure). */
export function monthGrid(
  month: DateTime,
  today: string,
  figures: Awaited<ReturnType<typeof subjectSobriety>>,
): Calendar {
  const byDate = new Map(figures.days.map((d) => [d.date, d]));
  const days: CalendarDay[] = [];
  for (let d = month; d < month.plus({ months: 1 }); d = d.plus({ days: 1 })) {
    const date = d.toISODate()!;
    const found = byDate.get(date);
    const status = date > today ? 'future' : found ? found.status : 'no_tag';
    days.push({ date, day: d.day, status, reviewed: found && found.reviewed_status !== found.status ? (STATUS_TEXT[found.reviewed_status]?.text ?? found.reviewed_status) : null });
  }
  const weeks: Array<Array<CalendarDay | null>> = [];
  let week: Array<CalendarDay | null> = Array.from({ length: month.weekday - 1 }, () => null);
  for (const d of days) {
    week.push(d);
    if (week.length === 7) (weeks.push(week), (week = []));
  }
  if (week.length) weeks.push([...week, ...Array.from({ length: 7 - week.length }, () => null)]);
  const current = today.slice(0, 7) === month.toFormat('yyyy-MM');
  const reviewedDiffers = figures.reviewed_sober_days !== figures.sober_days || figures.reviewed_monitored_days !== figures.monitored_days;
  return {
    month: month.toFormat('yyyy-MM'),
    title: month.toFormat('LLLL yyyy'),
    weeks,
    previous: month.minus({ months: 1 }).toFormat('yyyy-MM'),
    next: current ? null : month.plus({ months: 1 }).toFormat('yyyy-MM'),
    rateText: rateInWords(figures.sober_days, figures.monitored_days, figures.rate, figures.ci95),
    reviewedText: reviewedDiffers ? rateInWords(figures.reviewed_sober_days, figures.reviewed_monitored_days, figures.reviewed_rate, figures.reviewed_ci95) : null,
    pending: figures.pending_events,
    legend: Object.entries(STATUS_TEXT).filter(([k]) => k !== 'future').map(([status, v]) => ({ status, ...v })),
    statusText: STATUS_TEXT,
  };
}

/**
 * The calendar of one subject for the subject page, or null when no alcohol tag was ever fitted.
 * Reads [first of the month, tomorrow or the next month's first) and audits `sobriety.read` as the API does.
 */
export async function sobrietyCalendar(pool: Pool, request: FastifyRequest, subject: { id: string; timezone: string }, monthQuery: unknown, now = new Date()): Promise<Calendar | null> {
  if (!(await hasAlcoholMonitoring(pool, subject.id))) return null;
  const month = monthOf(monthQuery, subject.timezone, now);
  const todayDt = DateTime.fromJSDate(now, { zone: subject.timezone }).startOf('day');
  const nextMonth = month.plus({ months: 1 });
  const end = nextMonth < todayDt.plus({ days: 1 }) ? nextMonth : todayDt.plus({ days: 1 });
  const from = month.toISODate()!;
  const to = end.toISODate()!;
  const figures = await subjectSobriety(pool, subject, from, to);
  await audit(pool, request, { action: 'sobriety.read', subjectId: subject.id, detail: { from, to, via: 'console.subject' } });
  return monthGrid(month, todayDt.toISODate()!, figures);
}

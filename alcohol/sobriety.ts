import type { Queryable } from '../platform/db.js';
import { localDays, type DayStatus } from './days.js';
import { ratesOfDays, reviewedRate, soberRate } from './rate.js';
import { cohortTotals, fittedIntervals, loadDays } from './alcohol.repo.js';

/**
 * The sober-day answers of contract §4, automatic and reviewed (1.1), shared by every route that
 * gives them (a manager's or supervisor's subject route, the analyst's pseudonymous subject
 * route, the cohort route): the routes decide who may ask and how the subject is named; the
 * figures come from here only.
 */

export interface SobrietyDay {
  date: string;
  status: DayStatus;
  reviewed_status: DayStatus;
  pending_events: number;
  params_version: string | null;
}

/** One subject's days over the local dates [from, to) and both sets of figures. */
export async function subjectSobriety(db: Queryable, subject: { id: string; timezone: string }, from: string, to: string) {
  const calendar = localDays(from, to, subject.timezone);
  const fitted = calendar.length ? await fittedIntervals(db, subject.id, new Date(calendar[0]![1]), new Date(calendar[calendar.length - 1]![2])) : [];
  const stored = new Map((await loadDays(db, subject.id, from, to)).map((d) => [d.date, d]));
  // a fitted day with no stored result had no reading at all: not monitored
  const days: SobrietyDay[] = calendar
    .filter(([, s, e]) => fitted.some(([f0, f1]) => f1 > s && f0 < e))
    .map(([date]) => {
      const d = stored.get(date);
      return { date, status: d?.status ?? 'not_monitored', reviewed_status: d?.reviewed_status ?? 'not_monitored', pending_events: d?.pending_events ?? 0, params_version: d?.params_version ?? null };
    });
  return { days, ...ratesOfDays(days), params_versions: [...new Set(days.flatMap((d) => (d.params_version ? [d.params_version] : [])))] };
}

/** A cohort's (or everyone's) totals over [from, to) with one row per subject, named by `refOf`. */
export async function cohortSobriety(db: Queryable, cohort: string | null, from: string, to: string, refOf: (subjectId: string) => string) {
  const rows = await cohortTotals(db, cohort, from, to);
  const sum = { sober: 0, monitored: 0, rSober: 0, rMonitored: 0, pending: 0 };
  const subjects = rows.map((r) => {
    sum.sober += r.sober_days;
    sum.monitored += r.monitored_days;
    sum.rSober += r.reviewed_sober_days;
    sum.rMonitored += r.reviewed_monitored_days;
    sum.pending += r.pending_events;
    return { subject: refOf(r.subject_id), cohort: r.cohort, ...figures(r.sober_days, r.monitored_days, r.reviewed_sober_days, r.reviewed_monitored_days, r.pending_events) };
  });
  return { subjects: subjects.length, ...figures(sum.sober, sum.monitored, sum.rSober, sum.rMonitored, sum.pending), rows: subjects };
}

function figures(sober: number, monitored: number, rSober: number, rMonitored: number, pending: number) {
  return { ...soberRate(sober, monitored), ...reviewedRate(rSober, rMonitored), pending_events: pending };
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { cohortSobriety } from '../alcohol/sobriety.js';
import type { ConsoleDeps } from './console.plugin.js';
import { toCsv } from './csv.js';
import { ciText, cohortChart, pct, type CohortMonth } from './oversight.present.js';

/** the cohorts of contract §2, in the order the pages show them */
export const COHORTS = ['fixed', 'flex', 'free'] as const;
const MAX_MONTHS = 24;
const title = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
/** the roles of GET /v1/sobriety, the API route these figures come from */
const ROLES = ['analyst', 'supervisor'] as const;

type FieldError = { text: string; href: string };
export interface SoberQuery { from: string; to: string; cohorts: string[]; reviewed: boolean }

/** The form's query, with the default period (the last 6 months) and every cohort; or the errors. */
export function parseSoberQuery(q: Record<string, unknown>, now: DateTime): { query: SoberQuery; errors: FieldError[] } {
  const month = (v: unknown, fallback: string) => (typeof v === 'string' && v !== '' ? v.slice(0, 16) : fallback);
  const from = month(q.from, now.minus({ months: 5 }).toFormat('yyyy-LL'));
  const to = month(q.to, now.toFormat('yyyy-LL'));
  const raw = q.cohort === undefined ? [...COHORTS] : ([] as unknown[]).concat(q.cohort).map(String);
  const cohorts = COHORTS.filter((c) => raw.includes(c));
  const errors: FieldError[] = [];
  const valid = (m: string) => /^\d{4}-(0[1-9]|1[0-2])$/.test(m);
  if (!valid(from)) errors.push({ text: 'Enter the first month as year and month, for example 2026-09', href: '#from' });
  if (!valid(to)) errors.push({ text: 'Enter the last month as year and month, for example 2026-11', href: '#to' });
  if (errors.length === 0 && from > to) errors.push({ text: 'The first month must not be after the last month', href: '#from' });
  if (errors.length === 0 && monthsOf(from, to).length > MAX_MONTHS) errors.push({ text: `Choose at most ${MAX_MONTHS} months`, href: '#to' });
  if (raw.length > cohorts.length || cohorts.length === 0) errors.push({ text: 'Choose one or more cohorts from the list (two or more to compare them)', href: '#cohort' });
  return { query: { from, to, cohorts, reviewed: q.basis === 'reviewed' }, errors };
}

/** Months "YYYY-MM" from `from` to `to`, both included. */
export function monthsOf(from: string, to: string): string[] {
  const out: string[] = [];
  for (let m = DateTime.fromISO(`${from}-01`); m.toFormat('yyyy-LL') <= to && out.length <= MAX_MONTHS; m = m.plus({ months: 1 })) out.push(m.toFormat('yyyy-LL'));
  return out;
}

/**
 * Each cohort's figures for each month, from the function that answers GET /v1/sobriety
 * (`cohortSobriety`): totals only. Its per-subject rows are dropped here, unread: the pages
 * never carry a subject id, a pseudonymous reference, a name or a location.
 */
export async function cohortMonths(pool: Pool, cohorts: string[], months: string[]): Promise<CohortMonth[]> {
  const out: CohortMonth[] = [];
  for (const cohort of cohorts) {
    for (const month of months) {
      const start = DateTime.fromISO(`${month}-01`);
      const { rows: _rows, ...totals } = await cohortSobriety(pool, cohort, start.toISODate()!, start.plus({ months: 1 }).toISODate()!, () => '');
      out.push({ cohort, month, ...totals });
    }
  }
  return out;
}

const CSV_HEADER = ['cohort', 'month', 'subjects', 'sober_days', 'monitored_days', 'rate', 'ci95_low', 'ci95_high', 'reviewed_sober_days', 'reviewed_monitored_days', 'reviewed_rate', 'reviewed_ci95_low', 'reviewed_ci95_high', 'pending_events'];

export function sobrietyCsv(figures: CohortMonth[]): string {
  return toCsv(
    CSV_HEADER,
    figures.map((f) => [f.cohort, f.month, f.subjects, f.sober_days, f.monitored_days, f.rate, f.ci95?.[0], f.ci95?.[1], f.reviewed_sober_days, f.reviewed_monitored_days, f.reviewed_rate, f.reviewed_ci95?.[0], f.reviewed_ci95?.[1], f.pending_events]),
  );
}

/** The analyst's pages (issue 11 §6): sober-day rates per cohort by month, compared, and as CSV. */
export function analystRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    const page = (request: FastifyRequest, data: Record<string, unknown>) => ({ ...data, user: request.user, csrf: request.consoleSession?.csrf ?? '' });
    const read = async (request: FastifyRequest, via: string) => {
      const { query, errors } = parseSoberQuery(request.query as Record<string, unknown>, DateTime.utc());
      if (errors.length) return { query, errors, figures: [] as CohortMonth[], months: [] as string[] };
      const months = monthsOf(query.from, query.to);
      const figures = await cohortMonths(pool, query.cohorts, months);
      // as GET /v1/sobriety audits its answer: what was asked and how many people it covers
      await audit(pool, request, { action: 'sobriety.export', detail: { via, cohorts: query.cohorts, from: query.from, to: query.to, months: months.length, subject_counts: figures.map((f) => f.subjects) } });
      return { query, errors, figures, months };
    };

    app.get('/analyst/sober-days', { config: { roles: ROLES, session: true }, schema: { hide: true } }, async (request, reply) => {
      const { query, errors, figures, months } = await read(request, 'console.analyst');
      const fieldErrors = Object.fromEntries([...errors].reverse().map((e) => [e.href.slice(1), e.text]));
      const rows = figures.map((f) => ({ ...f, monthName: DateTime.fromISO(`${f.month}-01`).toFormat('LLLL yyyy'), rateText: pct(f.rate), ciText: ciText(f.ci95), reviewedRateText: pct(f.reviewed_rate), reviewedCiText: ciText(f.reviewed_ci95) }));
      const csvQuery = new URLSearchParams([['from', query.from], ['to', query.to], ...query.cohorts.map((c) => ['cohort', c]), ['basis', query.reviewed ? 'reviewed' : 'automatic']]).toString();
      return reply.code(errors.length ? 400 : 200).view(
        'analyst/sober-days.njk',
        page(request, { title: 'Sober days', nav: 'sober-days', query, errors, fieldErrors, cohortItems: COHORTS.map((c) => ({ value: c, text: title(c), checked: query.cohorts.includes(c) })), cohortNames: query.cohorts.map(title), rows, chart: errors.length ? null : cohortChart(months, query.cohorts, figures, query.reviewed), csvQuery }),
      );
    });

    app.get('/analyst/sober-days.csv', { config: { roles: ROLES, session: true }, schema: { hide: true } }, async (request, reply) => {
      const { query, errors, figures } = await read(request, 'console.analyst.csv');
      if (errors.length) return reply.code(400).type('text/plain; charset=utf-8').send(errors.map((e) => e.text).join('\n'));
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="sober-days-${query.from}-to-${query.to}.csv"`)
        .send(sobrietyCsv(figures));
    });
  };
}

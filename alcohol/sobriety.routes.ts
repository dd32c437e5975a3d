import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { RefId } from '../platform/http/schemas.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { localDays } from './days.js';
import { rateOfDays, soberRate } from './rate.js';
import { cohortTotals, fittedIntervals, loadDays, pseudonymFor, pseudonymKey } from './alcohol.repo.js';

const DateOnly = Type.String({ format: 'date', description: 'YYYY-MM-DD, a local day in the subject’s time zone' });
const Period = Type.Object({ from: DateOnly, to: DateOnly }, { additionalProperties: false });
const MAX_DAYS = 5 * 366;

function periodProblem(from: string, to: string): string | null {
  const days = DateTime.fromISO(to).diff(DateTime.fromISO(from), 'days').days;
  if (!(days > 0)) return '`from` must be before `to`';
  if (days > MAX_DAYS) return 'a period covers at most 5 years';
  return null;
}

/** Sober-day figures for managers and analysts (contract §4, §6): never a name or a location. */
export function sobrietyRoutes(pool: Pool): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/v1/subjects/:id/sobriety',
      {
        config: { roles: ['offender_manager', 'supervisor', 'analyst'] },
        schema: { operationId: 'getSubjectSobriety', tags: ['alcohol'], summary: 'Day statuses and the sober-day rate of a subject over [from, to)', params: Type.Object({ id: RefId }), querystring: Period },
      },
      async (request, reply) => {
        const { from, to } = request.query;
        const why = periodProblem(from, to);
        if (why) return problem(reply, 400, 'Bad Request', why);
        const user = userOf(request);
        const subject =
          user.role === 'analyst'
            ? ((await pool.query<{ id: string; timezone: string }>(`SELECT id, timezone FROM subjects WHERE id = $1`, [request.params.id])).rows[0] ?? null)
            : await getSubjectFor(pool, user, request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const calendar = localDays(from, to, subject.timezone);
        const fitted = calendar.length ? await fittedIntervals(pool, subject.id, new Date(calendar[0]![1]), new Date(calendar[calendar.length - 1]![2])) : [];
        const stored = new Map((await loadDays(pool, subject.id, from, to)).map((d) => [d.date, d]));
        // a fitted day with no stored result had no reading at all: not monitored
        const days = calendar
          .filter(([, s, e]) => fitted.some(([f0, f1]) => f1 > s && f0 < e))
          .map(([date]) => ({ date, status: stored.get(date)?.status ?? ('not_monitored' as const), params_version: stored.get(date)?.params_version ?? null }));
        await audit(pool, request, { action: 'sobriety.read', subjectId: subject.id, detail: { from, to } });
        const rate = rateOfDays(days);
        const ref = user.role === 'analyst' ? { subject: pseudonymFor(await pseudonymKey(pool), user.id, subject.id) } : { subject_id: subject.id };
        return { ...ref, from, to, days, ...rate, params_versions: [...new Set(days.flatMap((d) => (d.params_version ? [d.params_version] : [])))] };
      },
    );

    app.get(
      '/v1/sobriety',
      {
        config: { roles: ['analyst', 'supervisor'] },
        schema: {
          operationId: 'getSobrietyTotals',
          tags: ['alcohol'],
          summary: 'Sober-day totals for a cohort (or everyone) over [from, to), with per-subject pseudonymous rows',
          querystring: Type.Object(
            { cohort: Type.Optional(Type.Union([Type.Literal('fixed'), Type.Literal('flex'), Type.Literal('free')])), from: DateOnly, to: DateOnly },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) => {
        const { cohort, from, to } = request.query;
        const why = periodProblem(from, to);
        if (why) return problem(reply, 400, 'Bad Request', why);
        const user = userOf(request);
        const [rows, key] = await Promise.all([cohortTotals(pool, cohort ?? null, from, to), pseudonymKey(pool)]);
        let sober = 0;
        let monitored = 0;
        const subjects = rows.map((r) => {
          sober += r.sober_days;
          monitored += r.monitored_days;
          return { subject: pseudonymFor(key, user.id, r.subject_id), cohort: r.cohort, ...soberRate(r.sober_days, r.monitored_days) };
        });
        await audit(pool, request, { action: 'sobriety.export', detail: { cohort: cohort ?? 'all', from, to, subjects: subjects.length } });
        return { cohort: cohort ?? 'all', from, to, subjects: subjects.length, ...soberRate(sober, monitored), rows: subjects };
      },
    );
  };
}

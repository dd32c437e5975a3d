import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { RefId } from '../platform/http/schemas.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { pseudonymFor, pseudonymKey } from './alcohol.repo.js';
import { cohortSobriety, subjectSobriety } from './sobriety.js';

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
        schema: { tags: ['alcohol'], summary: 'Day statuses and the sober-day rate of a subject over [from, to)', params: Type.Object({ id: RefId }), querystring: Period },
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
        const figures = await subjectSobriety(pool, subject, from, to);
        await audit(pool, request, { action: 'sobriety.read', subjectId: subject.id, detail: { from, to } });
        const ref = user.role === 'analyst' ? { subject: pseudonymFor(await pseudonymKey(pool), user.id, subject.id) } : { subject_id: subject.id };
        return { ...ref, from, to, ...figures };
      },
    );

    app.get(
      '/v1/sobriety',
      {
        config: { roles: ['analyst', 'supervisor'] },
        schema: {
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
        const key = await pseudonymKey(pool);
        const figures = await cohortSobriety(pool, cohort ?? null, from, to, (id) => pseudonymFor(key, user.id, id));
        await audit(pool, request, { action: 'sobriety.export', detail: { cohort: cohort ?? 'all', from, to, subjects: figures.subjects } });
        return { cohort: cohort ?? 'all', from, to, ...figures };
      },
    );
  };
}

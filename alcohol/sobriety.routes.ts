import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem, problemResponses } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { RefId } from '../platform/http/schemas.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { pseudonymFor, pseudonymKey, subjectOfRef } from './alcohol.repo.js';
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

const Ref = Type.String({ pattern: '^[A-Za-z0-9_-]{16}$', description: 'a pseudonymous subject reference from the rows of GET /v1/sobriety' });
const Day = Type.Object({
  date: Type.String(),
  status: Type.String(),
  reviewed_status: Type.String(),
  pending_events: Type.Integer(),
  params_version: Type.Union([Type.String(), Type.Null()]),
});
// [lo, hi]: an array of two (a tuple would carry `additionalItems`, which OpenAPI 3.0 does not know)
const Ci = Type.Union([Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), Type.Null()]);
const RefBody = Type.Object({
  subject: Ref,
  from: Type.String(),
  to: Type.String(),
  days: Type.Array(Day),
  sober_days: Type.Integer(),
  monitored_days: Type.Integer(),
  rate: Type.Union([Type.Number(), Type.Null()]),
  ci95: Ci,
  reviewed_sober_days: Type.Integer(),
  reviewed_monitored_days: Type.Integer(),
  reviewed_rate: Type.Union([Type.Number(), Type.Null()]),
  reviewed_ci95: Ci,
  pending_events: Type.Integer(),
  params_versions: Type.Array(Type.String()),
});

/**
 * Sober-day figures (contract 1.1 §4, §6): managers and supervisors by subject id; analysts only
 * as aggregates and by pseudonymous reference, never a subject id, a name or a location.
 */
export function sobrietyRoutes(pool: Pool): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/v1/subjects/:id/sobriety',
      {
        // not for analysts: naming a subject id would link it to their pseudonym (§6)
        config: { roles: ['offender_manager', 'supervisor'], reasonRequired: supervisorReadsOneSubject },
        schema: { operationId: 'getSubjectSobriety', tags: ['alcohol'], summary: 'Day statuses and the sober-day rate of a subject over [from, to)', params: Type.Object({ id: RefId }), querystring: Period },
      },
      async (request, reply) => {
        const { from, to } = request.query;
        const why = periodProblem(from, to);
        if (why) return problem(reply, 400, 'Bad Request', why);
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const body = await subjectSobriety(pool, subject, from, to);
        await audit(pool, request, { action: 'sobriety.read', subjectId: subject.id, detail: { from, to } });
        return { subject_id: subject.id, from, to, ...body };
      },
    );

    app.get(
      '/v1/sobriety/subjects/:ref',
      {
        config: { roles: ['analyst'] },
        schema: {
          tags: ['alcohol'],
          operationId: 'getPseudonymousSobriety',
          summary: 'One pseudonymous subject’s day statuses and sober-day rate over [from, to), by the reference of the caller’s GET /v1/sobriety rows',
          params: Type.Object({ ref: Ref }),
          querystring: Period,
          response: { 200: RefBody, ...problemResponses },
        },
      },
      async (request, reply) => {
        const { from, to } = request.query;
        const why = periodProblem(from, to);
        if (why) return problem(reply, 400, 'Bad Request', why);
        const user = userOf(request);
        const subject = await subjectOfRef(pool, await pseudonymKey(pool), user.id, request.params.ref);
        if (!subject) return problem(reply, 404, 'Not Found', `no subject has the reference ${request.params.ref} for you`);
        const body = await subjectSobriety(pool, subject, from, to);
        // the log keeps the real subject (admins only read it), so the access can be checked
        await audit(pool, request, { action: 'sobriety.read', subjectId: subject.id, detail: { ref: request.params.ref, from, to } });
        return { subject: request.params.ref, from, to, ...body };
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
        const key = await pseudonymKey(pool);
        const figures = await cohortSobriety(pool, cohort ?? null, from, to, (id) => pseudonymFor(key, user.id, id));
        await audit(pool, request, { action: 'sobriety.export', detail: { cohort: cohort ?? 'all', from, to, subjects: figures.subjects } });
        return { cohort: cohort ?? 'all', from, to, ...figures };
      },
    );
  };
}

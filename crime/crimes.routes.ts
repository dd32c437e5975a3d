import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { withTransaction, type Pool } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { requireReason } from '../platform/http/reason.js';
import { audit } from '../registry/audit.repo.js';
import { crimeMatches, getCrime, listChecks, recordCheck, type CrimeRecord } from './crime.repo.js';
import { reviewMatch, type ReviewOutcome } from './review.js';
import { crimeParamsVersion, decide, DEFAULT_CRIME_PARAMS, type CrimeParams } from './rules.js';
import { problems, ServiceId, SubjectRef } from './schemas.js';
import { subjectFixes } from './trails.repo.js';

/**
 * Crimes, one-subject checks, the supervisors' list of checks and the review of matches
 * (contract §8). A crime analyst only ever sees subjects that were placed or possible; a check
 * of any other subject answers its category and the coverage of the window, no coordinates.
 */

const crimeOut = (c: CrimeRecord) => ({
  id: String(c.id),
  batch_id: String(c.batch_id),
  crime_ref: c.crime_ref,
  crime_type: c.crime_type,
  force: c.force,
  from: c.from_at,
  to: c.to_at,
  lat: c.lat,
  lon: c.lon,
  datum: c.datum,
  easting: c.easting,
  northing: c.northing,
  free_text: c.free_text,
});

/**
 * One subject's category for one crime, decided now with the latest run's parameters (or the
 * defaults): the API's check and the console's check form. `reason` is already validated; the
 * check is stored and audited with it. Name and fixes only for placed and possible.
 */
export async function checkCrimeSubject(pool: Pool, request: FastifyRequest, crimeId: string, subjectId: string, reason: string) {
  const crime = await getCrime(pool, crimeId);
  if (!crime) return { ok: false as const, detail: `crime ${crimeId} not found` };
  const subject = (await pool.query<{ id: string; display_name: string }>(`SELECT id, display_name FROM subjects WHERE id = $1`, [subjectId])).rows[0];
  if (!subject) return { ok: false as const, detail: `subject ${subjectId} not found` };
  const latest = await pool.query<{ params: CrimeParams }>(`SELECT params FROM crime_runs WHERE batch_id = $1 ORDER BY id DESC LIMIT 1`, [crime.batch_id]);
  const params = latest.rows[0]?.params ?? DEFAULT_CRIME_PARAMS;
  const G = params.max_gap_s * 1000;
  const w = { from: crime.from_at.getTime(), to: crime.to_at.getTime(), lat: crime.lat, lon: crime.lon };
  const { fixes, receivedMax } = await subjectFixes(pool, subject.id, w.from - G, w.to + G);
  const d = decide(fixes, w, params);
  const shown = d.category === 'placed' || d.category === 'possible';
  const user = userOf(request);
  await withTransaction(pool, async (c) => {
    await recordCheck(c, { crimeId: String(crime.id), subjectId: subject.id, actor: user.id, reason, category: d.category, paramsVersion: crimeParamsVersion(params) });
    await audit(c, request, { action: 'crime.check', subjectId: subject.id, detail: { crime_id: String(crime.id), crime_ref: crime.crime_ref, reason, category: d.category } });
  });
  return {
    ok: true as const,
    check: {
      crime_id: String(crime.id),
      crime_ref: crime.crime_ref,
      subject_id: subject.id,
      category: d.category,
      params,
      params_version: crimeParamsVersion(params),
      readings_received_max: receivedMax === null ? null : new Date(receivedMax).toISOString(),
      coverage: d.coverage,
      ...(shown ? { display_name: subject.display_name, deciding: d.deciding.map((f) => ({ ...f, ts: new Date(f.ts).toISOString() })) } : {}),
    },
  };
}

/** A review (the API's POST /v1/crime-matches/{id}/review and the console's buttons): once; confirmed raises the alert; audited in the same transaction. */
export async function reviewCrimeMatch(deps: { pool: Pool; metrics: Metrics }, request: FastifyRequest, matchId: string, decision: 'confirmed' | 'rejected', note: string): Promise<ReviewOutcome> {
  const user = userOf(request);
  const r = await withTransaction(deps.pool, async (c) => {
    const out = await reviewMatch(c, matchId, decision, user.id, note);
    if (!out.ok) return out;
    const crime = (await c.query<{ crime_ref: string }>(`SELECT crime_ref FROM crimes WHERE id = $1`, [out.match.crime_id])).rows[0]!;
    await audit(c, request, { action: 'crime.match.review', subjectId: out.match.subject_id, detail: { match_id: matchId, crime_ref: crime.crime_ref, decision, alert_id: out.alertId } });
    return out;
  });
  if (r.ok && r.alertId) deps.metrics.alertsRaised.inc({ type: 'crime_proximity' });
  return r;
}

export function crimeRoutes(deps: { pool: Pool; metrics: Metrics }): FastifyPluginAsyncTypebox {
  const { pool } = deps;
  return async (app) => {
    app.get(
      '/v1/crimes/:id',
      {
        config: { roles: ['crime_analyst', 'supervisor'] },
        schema: {
          tags: ['crime'],
          operationId: 'getCrime',
          summary: 'A crime and its placed and possible subjects (id, display name, deciding fixes and distances) in the latest finished run, or `run_id`',
          params: Type.Object({ id: ServiceId }),
          querystring: Type.Object({ run_id: Type.Optional(ServiceId) }, { additionalProperties: false }),
          response: problems(400, 401, 403, 404),
        },
      },
      async (request, reply) => {
        const crime = await getCrime(pool, request.params.id);
        if (!crime) return problem(reply, 404, 'Not Found', `crime ${request.params.id} not found`);
        const { run, matches } = await crimeMatches(pool, crime.id, request.query.run_id ?? null);
        if (request.query.run_id && (!run || String(run.batch_id) !== String(crime.batch_id))) return problem(reply, 404, 'Not Found', `run ${request.query.run_id} of this crime's batch not found`);
        const detail = { crime_id: String(crime.id), crime_ref: crime.crime_ref, run_id: run?.id ?? null };
        // one audit row per subject shown, so the audit log answers "who read about this person"
        if (matches.length === 0) await audit(pool, request, { action: 'crime.read', detail });
        for (const m of matches) await audit(pool, request, { action: 'crime.read', subjectId: m.subject_id, detail: { ...detail, category: m.category } });
        return {
          crime: crimeOut(crime),
          run: run && { id: String(run.id), status: run.status, params: run.params, params_version: run.params_version, readings_received_max: run.readings_received_max, finished_at: run.finished_at },
          subjects: matches.map((m) => ({
            match_id: String(m.id),
            subject_id: m.subject_id,
            display_name: m.display_name,
            category: m.category,
            deciding: m.deciding,
            review: m.review,
            reviewed_by: m.reviewed_by,
            reviewed_at: m.reviewed_at,
            review_note: m.review_note,
            alert_id: m.alert_id,
          })),
        };
      },
    );

    app.get(
      '/v1/crimes/:id/subjects/:subject_id',
      {
        config: { roles: ['crime_analyst', 'supervisor'] },
        schema: {
          tags: ['crime'],
          operationId: 'checkCrimeSubject',
          summary: "One subject's category for one crime (placed, possible, ruled_out, no_data), decided now; fixes only when placed or possible. A reason is required and recorded",
          params: Type.Object({ id: ServiceId, subject_id: SubjectRef }),
          querystring: Type.Object({ reason: Type.String({ minLength: 3, maxLength: 500, description: 'why this subject is checked (audited, listed to supervisors)' }) }, { additionalProperties: false }),
          response: problems(400, 401, 403, 404),
        },
      },
      async (request, reply) => {
        // the same reason rules as X-Tagwatch-Reason; kept in the audit row's reason column too
        const reason = requireReason(request, reply, request.query.reason);
        if (reason === null) return reply;
        const out = await checkCrimeSubject(pool, request, request.params.id, request.params.subject_id, reason);
        if (!out.ok) return problem(reply, 404, 'Not Found', out.detail);
        return out.check;
      },
    );

    app.get(
      '/v1/crime-checks',
      {
        config: { roles: ['supervisor', 'admin'] },
        schema: {
          tags: ['crime'],
          operationId: 'listCrimeChecks',
          summary: 'Every one-subject crime check with who made it and the reason given, newest first; page with `before` = the previous page’s next_before',
          querystring: Type.Object(
            { limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }), before: Type.Optional(ServiceId) },
            { additionalProperties: false },
          ),
          response: problems(400, 401, 403),
        },
      },
      async (request) => {
        const items = (await listChecks(pool, request.query.limit, request.query.before ?? null)) as Array<{ id: string }>;
        await audit(pool, request, { action: 'crime.checks.read', detail: { count: items.length } });
        return { items, next_before: items.length === request.query.limit ? String(items[items.length - 1]!.id) : null };
      },
    );

    app.post(
      '/v1/crime-matches/:id/review',
      {
        config: { roles: ['crime_analyst'] },
        schema: {
          tags: ['crime'],
          operationId: 'reviewCrimeMatch',
          summary: 'Review a match once: confirmed raises a crime_proximity alert (medium) to the subject’s offender managers; rejected closes it',
          params: Type.Object({ id: ServiceId }),
          body: Type.Object(
            { decision: Type.Union([Type.Literal('confirmed'), Type.Literal('rejected')]), note: Type.String({ minLength: 1, maxLength: 2000 }) },
            { additionalProperties: false },
          ),
          response: problems(400, 401, 403, 404, 409),
        },
      },
      async (request, reply) => {
        const r = await reviewCrimeMatch(deps, request, request.params.id, request.body.decision, request.body.note);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        const m = r.match;
        return { id: String(m.id), crime_id: String(m.crime_id), subject_id: m.subject_id, category: m.category, review: m.review, reviewed_by: m.reviewed_by, reviewed_at: m.reviewed_at, review_note: m.review_note, alert_id: r.alertId };
      },
    );
  };
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { DateTimeIn, RefId } from '../platform/http/schemas.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { MAX_ZONE_VERTICES } from './geometry.js';
import { listZones, loadRules, toFeature } from './zones.repo.js';
import { createZone, removeZone, ZoneFeature } from './zones.service.js';
import { createReevaluation } from './reevaluate.js';
import { countFixesUpTo, fixChunks } from './reevaluate.repo.js';

/** longest period one re-evaluation covers (days) */
export const REEVALUATE_MAX_DAYS = 31;
/** fixes read and evaluated at a time by a re-evaluation */
export const REEVALUATE_CHUNK = 10_000;
/** default of REEVALUATE_MAX_FIXES: most fixes one re-evaluation reads */
export const REEVALUATE_MAX_FIXES = 500_000;

const SubjectParams = Type.Object({ id: RefId });
const ROLES = ['admin', 'offender_manager'] as const;

/** Zones of a subject and the re-evaluation report (contract §3, §6). */
export function zonesRoutes(pool: Pool, opts: { reevaluateMaxFixes?: number } = {}): FastifyPluginAsyncTypebox {
  const maxFixes = opts.reevaluateMaxFixes ?? REEVALUATE_MAX_FIXES;
  return async (app) => {
    app.post(
      '/v1/subjects/:id/zones',
      {
        config: { roles: ROLES },
        schema: {
          tags: ['zones'],
          summary: `Create a zone (GeoJSON Feature, at most ${MAX_ZONE_VERTICES} vertices)`,
          operationId: 'createZone',
          params: SubjectParams,
          body: ZoneFeature,
        },
      },
      async (request, reply) => {
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const r = await createZone(pool, request, subject, request.body);
        if (!r.ok) return problem(reply, 400, 'Bad Request', `invalid zone: ${r.problems[0]!.message}`);
        return reply.code(201).send(toFeature(r.zone));
      },
    );

    app.get(
      '/v1/subjects/:id/zones',
      { config: { roles: ROLES }, schema: { operationId: 'listZones', summary: 'A subject’s zones', tags: ['zones'], params: SubjectParams } },
      async (request, reply) => {
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        await audit(pool, request, { action: 'zone.list', subjectId: subject.id });
        return { type: 'FeatureCollection', features: (await listZones(pool, subject.id)).map(toFeature) };
      },
    );

    app.delete(
      '/v1/subjects/:id/zones/:zid',
      { config: { roles: ROLES }, schema: { operationId: 'deleteZone', summary: 'Delete a zone', tags: ['zones'], params: Type.Object({ id: RefId, zid: Type.String({ maxLength: 64 }) }) } },
      async (request, reply) => {
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        if (!(await removeZone(pool, request, subject.id, request.params.zid))) return problem(reply, 404, 'Not Found', `zone ${request.params.zid} not found`);
        return reply.code(204).send();
      },
    );

    app.post(
      '/v1/subjects/:id/reevaluate',
      {
        config: { roles: ['admin', 'supervisor', 'offender_manager'] },
        schema: {
          operationId: 'reevaluateZones',
          tags: ['zones'],
          summary: `Report the breaches the current zones find in a past period (no live alerts): at most ${REEVALUATE_MAX_DAYS} days and REEVALUATE_MAX_FIXES fixes`,
          params: SubjectParams,
          body: Type.Object({ from: DateTimeIn, to: DateTimeIn }, { additionalProperties: false }),
        },
      },
      async (request, reply) => {
        const from = new Date(request.body.from);
        const to = new Date(request.body.to);
        if (!(from < to)) return problem(reply, 400, 'Bad Request', '`from` must be before `to`');
        if (to.getTime() - from.getTime() > REEVALUATE_MAX_DAYS * 86400_000) {
          return problem(reply, 400, 'Bad Request', `a re-evaluation covers at most ${REEVALUATE_MAX_DAYS} days: ask for several shorter periods`);
        }
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        if ((await countFixesUpTo(pool, subject.id, from, to, maxFixes + 1)) > maxFixes) {
          return problem(reply, 422, 'Unprocessable Content', `the period holds more than ${maxFixes} fixes, the most one re-evaluation reads: ask for a shorter period`);
        }
        const rules = await loadRules(pool, subject.id);
        await audit(pool, request, { action: 'zone.reevaluate', subjectId: subject.id, detail: { from: request.body.from, to: request.body.to } });
        // streamed: one chunk of fixes in memory at a time, the breach states carried between chunks
        const run = createReevaluation(rules, from.getTime(), to.getTime());
        for await (const fixes of fixChunks(pool, subject.id, from, to, REEVALUATE_CHUNK)) run.add(fixes);
        return run.finish();
      },
    );
  };
}

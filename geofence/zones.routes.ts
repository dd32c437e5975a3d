import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { DateTimeIn, RefId } from '../platform/http/schemas.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { geometryProblem, MAX_ZONE_VERTICES, type ZoneGeometry } from './geometry.js';
import { DAYS, scheduleProblem, type Window } from './schedule.js';
import { deleteZone, insertZone, listZones, loadRules, toFeature } from './zones.repo.js';
import { createReevaluation } from './reevaluate.js';
import { countFixesUpTo, fixChunks } from './reevaluate.repo.js';

/** longest period one re-evaluation covers (days) */
export const REEVALUATE_MAX_DAYS = 31;
/** fixes read and evaluated at a time by a re-evaluation */
export const REEVALUATE_CHUNK = 10_000;
/** default of REEVALUATE_MAX_FIXES: most fixes one re-evaluation reads */
export const REEVALUATE_MAX_FIXES = 500_000;

const ZoneFeature = Type.Object(
  {
    type: Type.Literal('Feature'),
    id: Type.Optional(Type.Unknown()),
    geometry: Type.Object(
      { type: Type.String(), coordinates: Type.Unknown({ description: `GeoJSON coordinates; at most ${MAX_ZONE_VERTICES} positions in a zone` }) },
      { additionalProperties: false },
    ),
    properties: Type.Object(
      {
        kind: Type.Union([Type.Literal('exclusion'), Type.Literal('inclusion')]),
        name: Type.Optional(Type.String({ maxLength: 200 })),
        radius_m: Type.Optional(Type.Number({ description: 'circle radius for a Point zone, metres' })),
        schedule: Type.Optional(
          Type.Array(
            Type.Object(
              { days: Type.Array(Type.Union(DAYS.map((d) => Type.Literal(d))), { minItems: 1, maxItems: 7 }), start: Type.String(), end: Type.String() },
              { additionalProperties: false },
            ),
            { maxItems: 50, description: "weekly windows in the subject's time zone; absent = always" },
          ),
        ),
        active_from: Type.Optional(DateTimeIn),
        active_to: Type.Optional(DateTimeIn),
        exceptions: Type.Optional(Type.Array(Type.Object({ from: DateTimeIn, to: DateTimeIn }, { additionalProperties: false }), { maxItems: 500 })),
        grace_s: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, default: 60 })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

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
        const { geometry, properties: p } = request.body;
        const why =
          geometryProblem(geometry, p.radius_m) ??
          (geometry.type !== 'Point' && p.radius_m !== undefined ? 'radius_m applies to a Point zone only' : null) ??
          scheduleProblem(p.schedule, subject.timezone) ??
          (p.active_from && p.active_to && Date.parse(p.active_from) >= Date.parse(p.active_to) ? 'active_from must be before active_to' : null) ??
          ((p.exceptions ?? []).some((x) => Date.parse(x.from) >= Date.parse(x.to)) ? 'each exception needs from before to' : null);
        if (why) return problem(reply, 400, 'Bad Request', `invalid zone: ${why}`);
        const zone = await insertZone(
          pool,
          subject.id,
          {
            kind: p.kind,
            name: p.name ?? '',
            geometry: geometry as ZoneGeometry,
            radius_m: p.radius_m ?? null,
            schedule: (p.schedule as Window[] | undefined) ?? null,
            active_from: p.active_from ?? null,
            active_to: p.active_to ?? null,
            exceptions: p.exceptions ?? [],
            grace_s: p.grace_s ?? 60,
          },
          userOf(request).id,
        );
        await audit(pool, request, { action: 'zone.create', subjectId: subject.id, detail: { zone_id: zone.id } });
        return reply.code(201).send(toFeature(zone));
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
        if (!(await deleteZone(pool, subject.id, request.params.zid))) return problem(reply, 404, 'Not Found', `zone ${request.params.zid} not found`);
        await audit(pool, request, { action: 'zone.delete', subjectId: subject.id, detail: { zone_id: request.params.zid } });
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

import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyRequest } from 'fastify';
import { withTransaction, type Pool, type Queryable } from '../platform/db.js';
import { DateTimeIn } from '../platform/http/schemas.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import type { Subject } from '../registry/subjects.repo.js';
import { geometryProblem, MAX_ZONE_VERTICES, type ZoneGeometry } from './geometry.js';
import { DAYS, scheduleProblem, type Window } from './schedule.js';
import { deleteZone, insertZone, type ZoneRow } from './zones.repo.js';

/**
 * Creating, replacing and deleting zones (contract §3): the one place the rules live, called by
 * the API's zone routes (zones.routes.ts) and the console's zone form alike. A change touches no
 * past evaluation: re-evaluating history is asked for separately (POST …/reevaluate).
 */

/** A zone as the API takes it: a GeoJSON Feature (the body schema of POST /v1/subjects/{id}/zones). */
export const ZoneFeature = Type.Object(
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
export type ZoneFeatureIn = Static<typeof ZoneFeature>;

/** The part of a zone a problem is about (`index`: which schedule window or exception). */
export type ZoneField = 'kind' | 'name' | 'geometry' | 'radius_m' | 'schedule' | 'active_from' | 'active_to' | 'exceptions' | 'grace_s' | 'feature';
export interface ZoneProblem {
  field: ZoneField;
  index?: number;
  message: string;
}

// TypeBox checks `format` only for formats it is given: RFC 3339 date-time, as the API's validator
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));

/**
 * What the API's body schema refuses in `body` (the same schema, checked with TypeBox), for a
 * caller that does not come through the API's validator: one problem per failing property.
 */
export function schemaProblems(body: unknown): ZoneProblem[] {
  const out: ZoneProblem[] = [];
  for (const e of Value.Errors(ZoneFeature, body)) {
    const parts = e.path.split('/').filter(Boolean);
    const field = (parts[0] === 'properties' && parts[1] ? parts[1] : parts[0] === 'geometry' ? 'geometry' : 'feature') as ZoneField;
    const index = parts[0] === 'properties' && parts[2] !== undefined && /^\d+$/.test(parts[2]) ? Number(parts[2]) : undefined;
    if (out.some((p) => p.field === field && p.index === index)) continue;
    out.push({ field, ...(index !== undefined ? { index } : {}), message: `${e.path || '/'} ${e.message}` });
  }
  return out;
}

/**
 * Why a zone (already of the schema's shape) is invalid for a subject in `timezone`: every
 * problem, in the order the API reports them (the API answers the first, "invalid zone: …").
 */
export function zoneProblems(f: ZoneFeatureIn, timezone: string): ZoneProblem[] {
  const { geometry, properties: p } = f;
  const out: ZoneProblem[] = [];
  const g = geometryProblem(geometry, p.radius_m);
  if (g) out.push({ field: /radius_m/.test(g) ? 'radius_m' : 'geometry', message: g });
  if (geometry.type !== 'Point' && p.radius_m !== undefined) out.push({ field: 'radius_m', message: 'radius_m applies to a Point zone only' });
  const s = scheduleProblem(p.schedule, timezone);
  if (s) {
    const i = /^schedule\[(\d+)\]/.exec(s);
    out.push({ field: 'schedule', ...(i ? { index: Number(i[1]) } : {}), message: s });
  }
  if (p.active_from && p.active_to && Date.parse(p.active_from) >= Date.parse(p.active_to)) out.push({ field: 'active_to', message: 'active_from must be before active_to' });
  const x = (p.exceptions ?? []).findIndex((e) => Date.parse(e.from) >= Date.parse(e.to));
  if (x >= 0) out.push({ field: 'exceptions', index: x, message: 'each exception needs from before to' });
  return out;
}

export type ZoneCreated = { ok: true; zone: ZoneRow } | { ok: false; problems: ZoneProblem[] };
export type ZoneReplaced = ZoneCreated | { ok: false; notFound: true };

/** The row to store for a valid feature (defaults: name '', grace 60 s, no exceptions). */
function inputOf(f: ZoneFeatureIn) {
  const p = f.properties;
  return {
    kind: p.kind,
    name: p.name ?? '',
    geometry: f.geometry as ZoneGeometry,
    radius_m: p.radius_m ?? null,
    schedule: (p.schedule as Window[] | undefined) ?? null,
    active_from: p.active_from ?? null,
    active_to: p.active_to ?? null,
    exceptions: p.exceptions ?? [],
    grace_s: p.grace_s ?? 60,
  };
}

/** Creates a zone of `subject` (whom the caller may see) and audits `zone.create`; `detail` is added to the audit row. */
export async function createZone(db: Queryable, request: FastifyRequest, subject: Subject, f: ZoneFeatureIn, detail: Record<string, unknown> = {}): Promise<ZoneCreated> {
  const problems = zoneProblems(f, subject.timezone);
  if (problems.length) return { ok: false, problems };
  const zone = await insertZone(db, subject.id, inputOf(f), userOf(request).id);
  await audit(db, request, { action: 'zone.create', subjectId: subject.id, detail: { zone_id: zone.id, ...detail } });
  return { ok: true, zone };
}

/** Deletes (marks deleted) a live zone of the subject and audits `zone.delete`; false when there is no such zone. */
export async function removeZone(db: Queryable, request: FastifyRequest, subjectId: string, zoneId: string, detail: Record<string, unknown> = {}): Promise<boolean> {
  if (!(await deleteZone(db, subjectId, zoneId))) return false;
  await audit(db, request, { action: 'zone.delete', subjectId, detail: { zone_id: zoneId, ...detail } });
  return true;
}

/**
 * Changes a zone. The API has no update (contract §6: create, list, delete), so a change is a
 * replacement, in one transaction: the old zone is deleted (kept for the alerts it raised) and
 * the new one created with a new id, both audited as the API audits them, each naming the other.
 */
export async function replaceZone(pool: Pool, request: FastifyRequest, subject: Subject, zoneId: string, f: ZoneFeatureIn, detail: Record<string, unknown> = {}): Promise<ZoneReplaced> {
  const problems = zoneProblems(f, subject.timezone);
  if (problems.length) return { ok: false, problems };
  return withTransaction(pool, async (tx) => {
    const locked = await tx.query(`SELECT id FROM zones WHERE id = $1 AND subject_id = $2 AND deleted_at IS NULL FOR UPDATE`, [/^[0-9a-f-]{36}$/i.test(zoneId) ? zoneId : null, subject.id]);
    if (locked.rowCount === 0) return { ok: false, notFound: true } as const;
    const zone = await insertZone(tx, subject.id, inputOf(f), userOf(request).id);
    await removeZone(tx, request, subject.id, zoneId, { ...detail, replaced_by: zone.id });
    await audit(tx, request, { action: 'zone.create', subjectId: subject.id, detail: { zone_id: zone.id, ...detail, replaces: zoneId } });
    return { ok: true, zone } as const;
  });
}

import type { Queryable } from '../platform/db.js';
import { toShape, type ZoneGeometry } from './geometry.js';
import type { ZoneRule } from './breach.js';
import type { Window } from './schedule.js';

export interface ZoneInput {
  kind: 'exclusion' | 'inclusion';
  name: string;
  geometry: ZoneGeometry;
  radius_m: number | null;
  schedule: Window[] | null;
  active_from: string | null;
  active_to: string | null;
  exceptions: Array<{ from: string; to: string }>;
  grace_s: number;
}

export interface ZoneRow extends Omit<ZoneInput, 'active_from' | 'active_to'> {
  id: string;
  subject_id: string;
  active_from: Date | null;
  active_to: Date | null;
  created_by: string;
  created_at: Date;
  deleted_at: Date | null;
}

const COLS = `id, subject_id, kind, name, geometry, radius_m, schedule, active_from, active_to, exceptions, grace_s, created_by, created_at, deleted_at`;

export async function insertZone(db: Queryable, subjectId: string, z: ZoneInput, createdBy: string): Promise<ZoneRow> {
  const r = await db.query<ZoneRow>(
    `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, schedule, active_from, active_to, exceptions, grace_s, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${COLS}`,
    [subjectId, z.kind, z.name, JSON.stringify(z.geometry), z.radius_m, z.schedule ? JSON.stringify(z.schedule) : null, z.active_from, z.active_to, JSON.stringify(z.exceptions), z.grace_s, createdBy],
  );
  return r.rows[0]!;
}

export async function listZones(db: Queryable, subjectId: string): Promise<ZoneRow[]> {
  const r = await db.query<ZoneRow>(`SELECT ${COLS} FROM zones WHERE subject_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, [subjectId]);
  return r.rows;
}

/** Marks a zone deleted (kept for the alerts it raised); false when there is no such live zone. */
export async function deleteZone(db: Queryable, subjectId: string, zoneId: string): Promise<boolean> {
  if (!/^[0-9a-f-]{36}$/i.test(zoneId)) return false;
  const r = await db.query(`UPDATE zones SET deleted_at = now() WHERE id = $1 AND subject_id = $2 AND deleted_at IS NULL`, [zoneId, subjectId]);
  return (r.rowCount ?? 0) > 0;
}

/** The rules of a zone row, as the pure core takes them (times in epoch ms). */
export function ruleOf(z: ZoneRow, timezone: string): ZoneRule {
  return {
    id: z.id,
    kind: z.kind,
    shape: toShape(z.geometry, z.radius_m ?? undefined),
    grace_ms: z.grace_s * 1000,
    since: z.created_at.getTime(),
    timezone,
    schedule: z.schedule,
    active_from: z.active_from ? z.active_from.getTime() : null,
    active_to: z.active_to ? z.active_to.getTime() : null,
    exceptions: z.exceptions.map((x) => ({ from: Date.parse(x.from), to: Date.parse(x.to) })),
  };
}

/** The live zones of a subject as rules, with the subject's time zone. */
export async function loadRules(db: Queryable, subjectId: string): Promise<ZoneRule[]> {
  return (await loadRulesOf(db, [subjectId])).get(subjectId) ?? [];
}

/** The live zones of many subjects as rules (in creation order); a subject without zones maps to nothing. */
export async function loadRulesOf(db: Queryable, subjectIds: readonly string[]): Promise<Map<string, ZoneRule[]>> {
  const out = new Map<string, ZoneRule[]>();
  if (subjectIds.length === 0) return out;
  const r = await db.query<ZoneRow & { timezone: string }>(
    `SELECT ${COLS.split(', ').map((c) => `z.${c}`).join(', ')}, s.timezone
       FROM zones z JOIN subjects s ON s.id = z.subject_id
      WHERE z.subject_id = ANY($1::text[]) AND z.deleted_at IS NULL ORDER BY z.subject_id, z.created_at, z.id`,
    [subjectIds],
  );
  for (const z of r.rows) {
    const list = out.get(z.subject_id) ?? [];
    list.push(ruleOf(z, z.timezone));
    out.set(z.subject_id, list);
  }
  return out;
}

/** A zone as the API shows it: a GeoJSON Feature. */
export function toFeature(z: ZoneRow) {
  return {
    type: 'Feature' as const,
    id: z.id,
    geometry: z.geometry,
    properties: {
      kind: z.kind,
      name: z.name,
      ...(z.radius_m !== null ? { radius_m: z.radius_m } : {}),
      ...(z.schedule ? { schedule: z.schedule } : {}),
      ...(z.active_from ? { active_from: z.active_from.toISOString() } : {}),
      ...(z.active_to ? { active_to: z.active_to.toISOString() } : {}),
      exceptions: z.exceptions,
      grace_s: z.grace_s,
      created_by: z.created_by,
      created_at: z.created_at.toISOString(),
    },
  };
}

import type { Queryable } from '../platform/db.js';
import { toShape, type ZoneGeometry } from './geometry.js';
import type { ZoneRule } from './breach.js';
import type { Window } from './schedule.js';
import { ZoneCache, zoneCache } from './zone-cache.js';

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

/**
 * The live zones of many subjects as rules (in creation order); a subject without zones maps to
 * nothing. Zones already prepared at the same row version come from `cache` (zone-cache.ts):
 * only new or changed zones are read in full and parsed.
 */
export async function loadRulesOf(db: Queryable, subjectIds: readonly string[], cache: ZoneCache = zoneCache): Promise<Map<string, ZoneRule[]>> {
  const out = new Map<string, ZoneRule[]>();
  if (subjectIds.length === 0) return out;
  const heads = await db.query<{ id: string; subject_id: string; version: string; timezone: string }>(
    `SELECT z.id, z.subject_id, z.xmin::text AS version, s.timezone
       FROM zones z JOIN subjects s ON s.id = z.subject_id
      WHERE z.subject_id = ANY($1::text[]) AND z.deleted_at IS NULL ORDER BY z.subject_id, z.created_at, z.id`,
    [subjectIds],
  );
  const keys = heads.rows.map((h) => ZoneCache.key(h.id, h.version, h.timezone));
  const found = keys.map((k) => cache.get(k));
  const missing = heads.rows.flatMap((h, i) => (found[i] ? [] : [{ h, i }]));
  if (missing.length > 0) {
    // read with the version again: a row changed between the two reads is cached under its new version only
    const r = await db.query<ZoneRow & { version: string }>(`SELECT ${COLS}, xmin::text AS version FROM zones WHERE id = ANY($1::uuid[])`, [missing.map(({ h }) => h.id)]);
    const rows = new Map(r.rows.map((z) => [z.id, z]));
    for (const { h, i } of missing) {
      const z = rows.get(h.id);
      if (!z) continue; // deleted meanwhile
      const rule = ruleOf(z, h.timezone);
      cache.set(ZoneCache.key(z.id, z.version, h.timezone), rule);
      found[i] = rule;
    }
  }
  heads.rows.forEach((h, i) => {
    const rule = found[i];
    if (!rule) return;
    const list = out.get(h.subject_id) ?? [];
    list.push(rule);
    out.set(h.subject_id, list);
  });
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

/** Subjects with an inclusion zone (a curfew) live now or ended less than a day ago. */
export async function subjectsWithCurfews(db: Queryable): Promise<string[]> {
  const r = await db.query<{ subject_id: string }>(
    `SELECT DISTINCT subject_id FROM zones WHERE kind = 'inclusion' AND deleted_at IS NULL AND coalesce(active_to, 'infinity') > now() - interval '1 day'`,
  );
  return r.rows.map((x) => x.subject_id);
}

/** The GPS-capable device fitted to the subject at `at`, or null. */
export async function gpsDeviceFitted(db: Queryable, subjectId: string, at: Date): Promise<string | null> {
  const r = await db.query<{ device_id: string }>(
    `SELECT a.device_id FROM assignments a JOIN devices d ON d.id = a.device_id
      WHERE a.subject_id = $1 AND a.start_at <= $2 AND coalesce(a.end_at, 'infinity') > $2 AND d.kind IN ('gps', 'combined') LIMIT 1`,
    [subjectId, at],
  );
  return r.rows[0]?.device_id ?? null;
}

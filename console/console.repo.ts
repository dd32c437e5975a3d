import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { caseloadFilter } from '../registry/subjects.repo.js';

/** What the console's lists read: the caseload filter of the API applies in SQL to each. */

export interface CaseloadRow {
  id: string;
  display_name: string;
  cohort: string;
  rag: string;
  device_id: string | null;
  /** device time of the fitted device's latest reading, and its battery (%), from device_health */
  last_reading_at: Date | null;
  battery_pct: number | null;
  open_high: number;
  open_medium: number;
  open_low: number;
}

export const CASELOAD_SORTS = { rag: `CASE s.rag WHEN 'red' THEN 0 WHEN 'amber' THEN 1 ELSE 2 END, s.id`, id: 's.id', alerts: 'open_high DESC, open_medium DESC, open_low DESC, s.id' } as const;
export type CaseloadSort = keyof typeof CASELOAD_SORTS;

export interface CaseloadQuery {
  /** part of the id or name, case-insensitive */
  search?: string;
  rag?: 'red' | 'amber' | 'green';
  sort: CaseloadSort;
  limit: number;
}

/** The user's caseload (managers: subjects listing them; supervisors: all), searched, filtered and sorted (default: RAG, red first, then id). */
export async function caseloadFor(db: Queryable, user: User, q: CaseloadQuery): Promise<CaseloadRow[]> {
  const f = caseloadFilter(user, 4, 's.offender_manager_ids');
  const r = await db.query<CaseloadRow>(
    `SELECT s.id, s.display_name, s.cohort, s.rag, cur.device_id, h.last_ts AS last_reading_at, h.battery_pct,
            (SELECT count(*) FROM alerts al WHERE al.subject_id = s.id AND al.status = 'open' AND al.severity = 'high')::int AS open_high,
            (SELECT count(*) FROM alerts al WHERE al.subject_id = s.id AND al.status = 'open' AND al.severity = 'medium')::int AS open_medium,
            (SELECT count(*) FROM alerts al WHERE al.subject_id = s.id AND al.status = 'open' AND al.severity = 'low')::int AS open_low
       FROM subjects s
       LEFT JOIN LATERAL (SELECT a.device_id FROM assignments a WHERE a.subject_id = s.id AND a.start_at <= now() AND (a.end_at IS NULL OR a.end_at > now()) ORDER BY a.start_at DESC LIMIT 1) cur ON true
       LEFT JOIN device_health h ON h.device_id = cur.device_id
      WHERE ${f.sql}
        AND ($2::text IS NULL OR strpos(lower(s.id), lower($2)) > 0 OR strpos(lower(s.display_name), lower($2)) > 0)
        AND ($3::text IS NULL OR s.rag = $3)
      ORDER BY ${CASELOAD_SORTS[q.sort]}
      LIMIT $1`,
    [q.limit, q.search ?? null, q.rag ?? null, ...f.params],
  );
  return r.rows;
}

export interface InboxRow {
  id: string;
  type: string;
  severity: string;
  status: string;
  subject_id: string;
  display_name: string;
  raised_at: Date;
  late: boolean;
}

/** Open alerts of the caseload, most severe first, then newest; one page (`page` from 1) plus whether more follow. */
export async function inboxFor(db: Queryable, user: User, page: number, size: number): Promise<{ items: InboxRow[]; more: boolean }> {
  const f = caseloadFilter(user, 3, 's.offender_manager_ids');
  const r = await db.query<InboxRow>(
    `SELECT a.id, a.type, a.severity, a.status, a.subject_id, s.display_name, a.raised_at, a.late
       FROM alerts a JOIN subjects s ON s.id = a.subject_id
      WHERE a.status = 'open' AND ${f.sql}
      ORDER BY CASE a.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, a.raised_at DESC, a.id DESC
      LIMIT $1 OFFSET $2`,
    [size + 1, (page - 1) * size, ...f.params],
  );
  return { items: r.rows.slice(0, size), more: r.rows.length > size };
}

export interface EvidenceRow {
  ts: string;
  received_at: Date | null;
  lat: number;
  lon: number;
  accuracy_m: number;
  class: string;
}

/** The evidence fixes of an alert with the time each reached the service (from the stored reading). */
export async function evidenceWithReceipt(db: Queryable, deviceId: string | null, evidence: unknown): Promise<EvidenceRow[]> {
  const fixes = (Array.isArray(evidence) ? evidence : []).filter(
    (e): e is { ts: string; lat: number; lon: number; accuracy_m: number; class: string } => typeof e === 'object' && e !== null && typeof (e as { ts?: unknown }).ts === 'string',
  );
  if (fixes.length === 0) return [];
  const received = new Map<string, Date>();
  if (deviceId) {
    const r = await db.query<{ ts: Date; received_at: Date }>(
      `SELECT ts, received_at FROM readings WHERE device_id = $1 AND stream = 'gps' AND ts = ANY($2::timestamptz[])`,
      [deviceId, fixes.map((f) => f.ts)],
    );
    for (const row of r.rows) received.set(row.ts.toISOString(), row.received_at);
  }
  return fixes.map((f) => ({ ts: f.ts, received_at: received.get(new Date(f.ts).toISOString()) ?? null, lat: f.lat, lon: f.lon, accuracy_m: f.accuracy_m, class: f.class }));
}

export interface MapZone { id: string; name: string; kind: 'exclusion' | 'inclusion'; geometry: unknown; radius_m: number | null; deleted: boolean }

/** One zone of a subject for a map, deleted ones too (an alert keeps the zone it was raised on). */
export async function zoneForMap(db: Queryable, subjectId: string, zoneId: string | null): Promise<MapZone | null> {
  if (!zoneId) return null;
  const r = await db.query<MapZone>(
    `SELECT id, name, kind, geometry, radius_m, deleted_at IS NOT NULL AS deleted FROM zones WHERE subject_id = $1 AND id = $2`,
    [subjectId, zoneId],
  );
  return r.rows[0] ?? null;
}

import type { Queryable } from '../platform/db.js';

/** What the admin pages list (console/admin.routes.ts); reads only. */

export interface DeviceRow {
  id: string;
  kind: string;
  active: boolean;
  created_at: Date;
  subject_id: string | null;
  fitted_from: Date | null;
  last_reading_at: Date | null;
}

/** Every device with whom it is fitted to now and its last reading (device time), by id; at most `limit`. */
export async function devicesForAdmin(db: Queryable, limit: number): Promise<DeviceRow[]> {
  const r = await db.query<DeviceRow>(
    `SELECT d.id, d.kind, d.active, d.created_at, a.subject_id, a.start_at AS fitted_from, h.last_ts AS last_reading_at
       FROM devices d
       LEFT JOIN LATERAL (SELECT subject_id, start_at FROM assignments
                           WHERE device_id = d.id AND start_at <= now() AND (end_at IS NULL OR end_at > now())
                           ORDER BY start_at DESC LIMIT 1) a ON true
       LEFT JOIN device_health h ON h.device_id = d.id
      ORDER BY d.id LIMIT $1`,
    [limit],
  );
  return r.rows;
}

export interface SubjectRow {
  id: string;
  display_name: string;
  cohort: string;
  rag: string;
  timezone: string;
  offender_manager_ids: string[];
  device_id: string | null;
}

/** Every subject with the device fitted now, by id; at most `limit`. */
export async function subjectsForAdmin(db: Queryable, limit: number): Promise<SubjectRow[]> {
  const r = await db.query<SubjectRow>(
    `SELECT s.id, s.display_name, s.cohort, s.rag, s.timezone, s.offender_manager_ids, a.device_id
       FROM subjects s
       LEFT JOIN LATERAL (SELECT device_id FROM assignments
                           WHERE subject_id = s.id AND start_at <= now() AND (end_at IS NULL OR end_at > now())
                           ORDER BY start_at DESC LIMIT 1) a ON true
      ORDER BY s.id LIMIT $1`,
    [limit],
  );
  return r.rows;
}

/** Active devices not fitted now or later (the fit form's choices). */
export async function unfittedDevices(db: Queryable): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `SELECT d.id FROM devices d WHERE d.active AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.device_id = d.id AND a.end_at IS NULL) ORDER BY d.id LIMIT 500`,
  );
  return r.rows.map((x) => x.id);
}

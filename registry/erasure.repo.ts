import type pg from 'pg';

export interface ErasureResult {
  readings: number;
  rejections: number;
  alerts: number;
  zones: number;
  /** devices the subject wore last: deactivated (and their health and progress rows gone) */
  devices: string[];
}

/**
 * Erases a subject's personal data, inside the caller's transaction (the subject row must be
 * locked by it): readings and rejections of its devices within its fitted periods (device time
 * for readings, server receipt time for rejections), alerts with their events and every webhook
 * and email delivery of them (cascades), zones including deleted ones and their states, day
 * results, assignments and the subject. The devices whose latest assignment was this subject are
 * deactivated and lose their health row; their evaluation watermarks go when no other subject
 * ever wore them. The audit log keeps its rows (AUDIT_RETENTION_DAYS).
 */
export async function eraseSubject(client: pg.PoolClient, subjectId: string): Promise<ErasureResult> {
  const q = (sql: string) => client.query(sql, [subjectId]);
  const last = await q(
    `SELECT DISTINCT ON (a2.device_id) a2.device_id, a2.subject_id
       FROM assignments a2 WHERE a2.device_id IN (SELECT device_id FROM assignments WHERE subject_id = $1)
      ORDER BY a2.device_id, a2.start_at DESC`,
  );
  const devices = last.rows.filter((r) => r.subject_id === subjectId).map((r) => r.device_id as string).sort();
  const readings = await q(
    `DELETE FROM readings r USING assignments a
      WHERE a.subject_id = $1 AND r.device_id = a.device_id AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')`,
  );
  const rejections = await q(
    `DELETE FROM rejections r USING assignments a
      WHERE a.subject_id = $1 AND r.device_id = a.device_id AND r.received_at >= a.start_at AND r.received_at < coalesce(a.end_at, 'infinity')`,
  );
  const alerts = await q(`DELETE FROM alerts WHERE subject_id = $1`); // cascades: events, webhook deliveries and attempts, email deliveries
  await q(`DELETE FROM zone_states WHERE subject_id = $1`);
  const zones = await q(`DELETE FROM zones WHERE subject_id = $1`); // deleted (soft) zones too
  await client.query(`DELETE FROM device_health WHERE device_id = ANY($1::text[])`, [devices]);
  const unshared = `SELECT device_id FROM assignments WHERE subject_id = $1
                    EXCEPT SELECT device_id FROM assignments WHERE subject_id <> $1`;
  await q(`DELETE FROM geofence_progress WHERE device_id IN (${unshared})`);
  await q(`DELETE FROM alcohol_progress WHERE device_id IN (${unshared})`);
  await client.query(`UPDATE devices SET active = false, updated_at = now() WHERE id = ANY($1::text[])`, [devices]);
  await q(`DELETE FROM subjects WHERE id = $1`); // cascades: assignments, day results, month rollups
  return { readings: readings.rowCount ?? 0, rejections: rejections.rowCount ?? 0, alerts: alerts.rowCount ?? 0, zones: zones.rowCount ?? 0, devices };
}

import type { Pool, Queryable } from '../platform/db.js';
import { storageMode, withTransaction } from '../platform/db.js';

/**
 * Retention (contract §1, README "Security model"): personal data is kept RETENTION_DAYS
 * (default 6 years), the audit log AUDIT_RETENTION_DAYS. The worker's hourly maintenance job runs
 * both as the schema owner (MIGRATION_DATABASE_URL): only the owner may purge the audit log, and
 * on TimescaleDB only the owner may set the readings' retention policy.
 */

/** A table whose rows expire: `sql` deletes those older than the cutoff `$1` (timestamptz). */
export interface RetentionRule {
  table: string;
  sql: string;
}

export const RETENTION_RULES: readonly RetentionRule[] = [
  // on TimescaleDB the retention policy drops whole chunks instead (applyRetentionPolicy)
  { table: 'readings', sql: `DELETE FROM readings WHERE ts < $1` },
  { table: 'rejections', sql: `DELETE FROM rejections WHERE received_at < $1` },
  // an alert goes when it last changed before the cutoff, with its history and deliveries
  { table: 'alerts', sql: `DELETE FROM alerts WHERE updated_at < $1` },
  { table: 'webhook_deliveries', sql: `DELETE FROM webhook_deliveries WHERE created_at < $1` },
  { table: 'webhook_attempts', sql: `DELETE FROM webhook_attempts WHERE at < $1` },
  { table: 'email_deliveries', sql: `DELETE FROM email_deliveries WHERE created_at < $1` },
  // day results by whole months (the monthly rollup must equal its days): up to a month longer
  { table: 'alcohol_days', sql: `DELETE FROM alcohol_days WHERE date < date_trunc('month', $1::timestamptz)::date` },
  { table: 'alcohol_day_months', sql: `DELETE FROM alcohol_day_months WHERE month < date_trunc('month', $1::timestamptz)::date` },
  // deleted zones, once no remaining alert shows them
  { table: 'zones', sql: `DELETE FROM zones z WHERE z.deleted_at < $1 AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.zone_id = z.id)` },
  { table: 'assignments', sql: `DELETE FROM assignments WHERE end_at < $1` },
  // crime batches with their crimes, runs and matches; one-subject checks
  { table: 'crime_batches', sql: `DELETE FROM crime_batches WHERE uploaded_at < $1` },
  { table: 'crime_checks', sql: `DELETE FROM crime_checks WHERE at < $1` },
];

/** Tables whose rows go with a parent row above (foreign keys ON DELETE CASCADE). */
export const CASCADED_TABLES: Readonly<Record<string, string>> = {
  alert_events: 'alerts',
  zone_states: 'zones',
  crimes: 'crime_batches',
  crime_runs: 'crime_batches',
  crime_matches: 'crime_runs',
};

/** Tables kept as they are: current state while the subject or device exists, or no personal data. */
export const KEPT_TABLES: Readonly<Record<string, string>> = {
  subjects: 'the subject while monitored (removed by erasure)',
  devices: 'the hardware register',
  device_health: "a device's current state (removed by erasure)",
  geofence_progress: 'evaluation watermark per device',
  alcohol_progress: 'evaluation watermark per device',
  webhooks: "staff's subscriptions",
  notification_contacts: "staff's alert email addresses",
  delivery_cursor: 'no personal data',
  email_cursor: 'no personal data',
  alcohol_params: 'no personal data',
  pseudonym_key: 'no personal data',
  console_sessions: "staff's console sessions: 12 h at most, expired rows purged at each sign-in and every 5 minutes by the worker (console/sessions.repo.ts)",
  console_sign_ins: 'OpenID Connect sign-ins under way: 10 minutes at most, used once, purged at each sign-in and every 5 minutes by the worker',
  console_reasons: "a supervisor's stated reason for one record in one session: 15 minutes at most, purged every 5 minutes by the worker and with the session",
  gps_hour_log: 'no personal data (hours and transaction ids); hours past the retention removed with each retention run (crime/trail-cache.ts compactGpsHourLog)',
  readings_delete_epoch: 'no personal data (one transaction id)',
};

/** Sets the TimescaleDB retention policy on readings (owner only); plain PostgreSQL: nothing. */
export async function applyRetentionPolicy(db: Queryable, days: number): Promise<'timescaledb' | 'postgresql'> {
  const mode = await storageMode(db);
  if (mode === 'timescaledb') {
    await db.query(`SELECT remove_retention_policy('readings', if_exists => true)`);
    await db.query(`SELECT add_retention_policy('readings', make_interval(days => $1::int))`, [days]);
  }
  return mode;
}

/** Deletes readings older than `days` before `now`; returns how many. */
export async function deleteExpiredReadings(db: Queryable, days: number, now: Date): Promise<number> {
  const r = await db.query(`DELETE FROM readings WHERE ts < $1::timestamptz - make_interval(days => $2::int)`, [now, days]);
  return r.rowCount ?? 0;
}

/** Applies every rule of RETENTION_RULES (readings only on plain PostgreSQL); rows deleted per table. */
export async function deleteExpiredPersonalData(db: Queryable, days: number, now: Date, storage: 'timescaledb' | 'postgresql'): Promise<Record<string, number>> {
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  const out: Record<string, number> = {};
  for (const rule of RETENTION_RULES) {
    if (rule.table === 'readings' && storage === 'timescaledb') continue;
    out[rule.table] = (await db.query(rule.sql, [cutoff])).rowCount ?? 0;
  }
  return out;
}

/**
 * Deletes audit rows older than `days` before `now` and records the purge in the log itself.
 * Needs the owner role: the runtime role has no DELETE privilege on audit_log, and the trigger
 * lets only rows older than the cutoff this transaction sets go. Returns how many.
 */
export async function purgeAuditLog(pool: Pool, days: number, now: Date): Promise<number> {
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  return withTransaction(pool, async (c) => {
    await c.query(`SELECT set_config('tagwatch.audit_purge_before', $1, true)`, [cutoff.toISOString()]);
    const r = await c.query(`DELETE FROM audit_log WHERE at < $1`, [cutoff]);
    const deleted = r.rowCount ?? 0;
    await c.query(`INSERT INTO audit_log (actor, role, action, detail) VALUES ('system', 'system', 'audit.retention', $1)`, [JSON.stringify({ deleted, before: cutoff.toISOString(), days })]);
    return deleted;
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase } from '../support/env.js';
import { createPool, type Pool } from '../../platform/db.js';
import { CASCADED_TABLES, KEPT_TABLES, RETENTION_RULES, deleteExpiredPersonalData, purgeAuditLog } from '../../ingest/retention.js';

// RETENTION_DAYS applies to every table holding personal data; the audit log keeps its rows for
// AUDIT_RETENTION_DAYS and only the owner role's maintenance job may purge them.

const DAY = 86_400_000;
const NOW = new Date();
const DAYS = 30;
const OLD = new Date(NOW.getTime() - (DAYS + 40) * DAY); // beyond retention, in an earlier month
const YOUNG = new Date(NOW.getTime() - 5 * DAY);

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  owner = createPool(db.ownerUrl, 2);
});

afterAll(async () => {
  await owner?.end();
  await db?.drop();
});

/** Rows of one person's data at time `at`, in every time-limited table; tags every text with `tag`. */
async function seed(tag: string, at: Date): Promise<void> {
  const q = (sql: string, params: unknown[]) => db.pool.query(sql, params);
  const device = `RT-${tag}`;
  const subject = `RS-${tag}`;
  await q(`INSERT INTO devices (id, kind) VALUES ($1, 'combined')`, [device]);
  await q(`INSERT INTO subjects (id, display_name, cohort, rag) VALUES ($1, $2, 'free', 'green')`, [subject, tag]);
  await q(`INSERT INTO assignments (subject_id, device_id, start_at, end_at) VALUES ($1, $2, $3::timestamptz - interval '2 days', $3::timestamptz - interval '1 day')`, [subject, device, at]);
  await q(`INSERT INTO readings (device_id, stream, ts, lat, lon, data) VALUES ($1, 'gps', $2, 52.9, -1.1, '{}')`, [device, at]);
  await q(`INSERT INTO rejections (received_at, topic, device_id, reason, raw) VALUES ($1, 't', $2, $3, '\\x00')`, [at, device, tag]);
  const z = await q(`INSERT INTO zones (subject_id, kind, name, geometry, created_by, created_at, deleted_at) VALUES ($1, 'exclusion', $2, '{}', 'x', $3, $3) RETURNING id`, [subject, tag, at]);
  await q(`INSERT INTO zone_states (subject_id, zone_id, state, updated_at) VALUES ($1, $2, '{}', $3)`, [subject, z.rows[0].id, at]);
  const a = await q(`INSERT INTO alerts (type, severity, subject_id, device_id, started_at, raised_at, updated_at) VALUES ('no_data', 'low', $1, $2, $3, $3, $3) RETURNING id`, [subject, device, at]);
  const ev = await q(`INSERT INTO alert_events (alert_id, at, actor, action, note) VALUES ($1, $2, 'system', 'raised', $3) RETURNING id`, [a.rows[0].id, at, tag]);
  const hook = await q(`INSERT INTO webhooks (owner_id, owner_role, url, secret) VALUES ($1, 'supervisor', 'https://example.org', 'secret-secret-secret') RETURNING id`, [`u-${tag}`]);
  const d = await q(`INSERT INTO webhook_deliveries (webhook_id, event_id, created_at) VALUES ($1, $2, $3) RETURNING id`, [hook.rows[0].id, ev.rows[0].id, at]);
  await q(`INSERT INTO webhook_attempts (delivery_id, at, duration_ms, error) VALUES ($1, $2, 5, $3)`, [d.rows[0].id, at, tag]);
  await q(`INSERT INTO email_deliveries (user_id, email, event_id, created_at) VALUES ($1, 'a@example.org', $2, $3)`, [`u-${tag}`, ev.rows[0].id, at]);
  await q(`INSERT INTO alcohol_params (version, params) VALUES ('v-ret', '{}') ON CONFLICT DO NOTHING`, []);
  await q(`INSERT INTO alcohol_days (subject_id, date, status, reviewed_status, covered_minutes, drinking_events, tampers, params_version) VALUES ($1, $2::timestamptz::date, 'sober', 'sober', 1, 0, 0, 'v-ret')`, [subject, at]);
  await q(`INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days) VALUES ($1, date_trunc('month', $2::timestamptz)::date, 1, 0, 0, 0)`, [subject, at]);
  // a crime batch uploaded at `at`, its crime, run and match, and a one-subject check
  const b = await q(`INSERT INTO crime_batches (police_batch_id, force, uploaded_by, uploaded_at, rows_total) VALUES ($1, 'NOTTS', $2, $3, 1) RETURNING id`, [`${tag}20261201`, tag, at]);
  const c = await q(
    `INSERT INTO crimes (batch_id, row_no, crime_ref, crime_type, force, from_at, to_at, lat, lon, datum, free_text) VALUES ($1, 1, $2, 'RB', 'NOTTS', $3, $3, 52.9, -1.1, 'WGS84', $2) RETURNING id`,
    [b.rows[0].id, tag, at],
  );
  const run = await q(`INSERT INTO crime_runs (batch_id, params, params_version, crimes_total, requested_by) VALUES ($1, '{}', $2, 1, $2) RETURNING id`, [b.rows[0].id, tag]);
  await q(`INSERT INTO crime_matches (run_id, crime_id, subject_id, category, deciding, coverage, review_note) VALUES ($1, $2, $3, 'placed', '[]', '{}', $4)`, [run.rows[0].id, c.rows[0].id, subject, tag]);
  await q(`INSERT INTO crime_checks (crime_id, subject_id, actor, reason, category, params_version, at) VALUES ($1, $2, $3, $3, 'ruled_out', 'v', $4)`, [c.rows[0].id, subject, tag, at]);
}

const TEXT_TYPES = ['text', 'character varying', 'jsonb', 'bytea', 'uuid', 'ARRAY'];

describe('retention of personal data', () => {
  it('classifies every table of the schema: time-limited, removed with its parent, or kept (a new table fails here until classified)', async () => {
    const r = await db.pool.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT IN ('pgmigrations', 'audit_log') ORDER BY 1`,
    );
    const classified = new Set([...RETENTION_RULES.map((x) => x.table), ...Object.keys(CASCADED_TABLES), ...Object.keys(KEPT_TABLES)]);
    expect(r.rows.map((x) => x.table_name).filter((t) => !classified.has(t))).toEqual([]);
  });

  it('removes rows older than RETENTION_DAYS from each time-limited table and keeps younger ones', async () => {
    await seed('OLD', OLD);
    await seed('NEW', YOUNG);
    const counts = await deleteExpiredPersonalData(owner, DAYS, NOW, 'postgresql');
    const tables = [...RETENTION_RULES.map((x) => x.table), ...Object.keys(CASCADED_TABLES)];
    for (const table of tables) {
      const cols = await db.pool.query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`, [table]);
      const text = cols.rows.filter((c) => TEXT_TYPES.includes(c.data_type)).map((c) => (c.data_type === 'bytea' ? `encode("${c.column_name}", 'escape')` : `"${c.column_name}"::text`));
      const all = await db.pool.query(`SELECT count(*)::int n FROM "${table}"`);
      const old = await db.pool.query(`SELECT count(*)::int n FROM "${table}" t WHERE ${text.map((c) => `${c} LIKE '%OLD%'`).join(' OR ') || 'false'}`);
      expect(all.rows[0].n, `${table}: the young rows stay`).toBeGreaterThan(0);
      expect(old.rows[0].n, `${table}: old rows left`).toBe(0);
    }
    expect(counts.readings).toBe(1);
    // by time, where no text carries the tag (day results go by whole months: the rollup must equal its days)
    const left = await db.pool.query(
      `SELECT (SELECT count(*) FROM alert_events WHERE at < $1)::int events, (SELECT count(*) FROM webhook_deliveries WHERE created_at < $1)::int deliveries,
              (SELECT count(*) FROM email_deliveries WHERE created_at < $1)::int emails, (SELECT count(*) FROM zone_states WHERE updated_at < $1)::int states,
              (SELECT count(*) FROM alcohol_days WHERE date < date_trunc('month', $1::timestamptz)::date)::int days,
              (SELECT count(*) FROM alcohol_day_months WHERE month < date_trunc('month', $1::timestamptz)::date)::int months,
              (SELECT count(*) FROM assignments WHERE end_at < $1)::int assignments`,
      [new Date(NOW.getTime() - DAYS * DAY)],
    );
    expect(left.rows[0]).toEqual({ events: 0, deliveries: 0, emails: 0, states: 0, days: 0, months: 0, assignments: 0 });
  });

  it('purges audit rows older than AUDIT_RETENTION_DAYS as the owner only; the runtime role cannot', async () => {
    const ownerClient = new pg.Client({ connectionString: db.ownerUrl });
    await ownerClient.connect();
    try {
      // backdated rows can only be written by the owner with the timestamp trigger off
      await ownerClient.query(`ALTER TABLE audit_log DISABLE TRIGGER audit_log_at_now`);
      await ownerClient.query(`INSERT INTO audit_log (at, actor, role, action) VALUES ($1, 'a', 'admin', 'old.read'), ($2, 'a', 'admin', 'new.read')`, [OLD, YOUNG]);
      await ownerClient.query(`ALTER TABLE audit_log ENABLE TRIGGER audit_log_at_now`);
    } finally {
      await ownerClient.end();
    }
    // the service cannot backdate a row: the database stamps it
    await db.pool.query(`INSERT INTO audit_log (at, actor, role, action) VALUES ($1, 'a', 'admin', 'forged.read')`, [OLD]);
    const forged = await db.pool.query(`SELECT at > now() - interval '1 minute' AS fresh FROM audit_log WHERE action = 'forged.read'`);
    expect(forged.rows).toEqual([{ fresh: true }]);
    await expect(purgeAuditLog(db.pool, DAYS, NOW)).rejects.toThrow(/permission denied/);
    expect(await purgeAuditLog(owner, DAYS, NOW)).toBe(1);
    const rows = await db.pool.query(`SELECT action FROM audit_log WHERE action IN ('old.read', 'new.read', 'forged.read') ORDER BY id`);
    expect(rows.rows.map((x) => x.action)).toEqual(['new.read', 'forged.read']);
    // the purge itself is in the log
    const purge = await db.pool.query(`SELECT actor, detail->>'deleted' deleted FROM audit_log WHERE action = 'audit.retention'`);
    expect(purge.rows).toEqual([{ actor: 'system', deleted: '1' }]);
  });
});

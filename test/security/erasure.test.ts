import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import type { Queryable } from '../../platform/db.js';

// Erasure must leave nothing of the subject outside the audit log. The search is generated from
// information_schema over every column of every table that can hold an id or a payload (text,
// jsonb, bytea, uuid, arrays), so a table added later is searched without touching this test.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

interface Person {
  subject: string;
  device: string;
  name: string;
  /** a string carried by every payload of this person (readings, rejections, evidence, errors) */
  mark: string;
}
const ERASED: Person = { subject: 'X-S1', device: 'X-D1', name: 'Erin Xerased', mark: 'ERIN-MARK' };
const KEPT: Person = { subject: 'X-S2', device: 'X-D2', name: 'Kim Kept', mark: 'KIM-MARK' };

/** Every row of the subject's data, in every table that has them, written as the service would. */
async function seed(p: Person): Promise<{ alert: string; zones: string[] }> {
  const admin = await authHeader('admin');
  const post = async (url: string, payload: unknown) => {
    const r = await svc.app.inject({ method: 'POST', url, headers: admin, payload: payload as object });
    expect(r.statusCode, `${url}: ${r.body}`).toBeLessThan(300);
    return r.json();
  };
  await post('/v1/devices', { id: p.device, kind: 'combined' });
  await post('/v1/subjects', { id: p.subject, display_name: p.name, cohort: 'flex', rag: 'amber', offender_manager_ids: ['om-x'] });
  await post(`/v1/subjects/${p.subject}/assignments`, { device_id: p.device, start: '2026-11-01T00:00:00Z' });
  const q = (sql: string, params: unknown[] = []) => db.pool.query(sql, params);
  await q(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', t, 52.9, -1.1, 10, jsonb_build_object('note', $2::text) FROM generate_series('2026-11-02'::timestamptz, '2026-11-02 00:30', interval '1 minute') t`,
    [p.device, p.mark],
  );
  await q(`INSERT INTO rejections (received_at, topic, device_id, item_index, reason, raw) VALUES ('2026-11-03', $1, $2, 0, 'schema', convert_to($3, 'UTF8'))`, [
    `tags/v1/${p.device}/gps`,
    p.device,
    JSON.stringify([{ ts: '2026-11-03T00:00:00Z', lat: 52.91, lon: -1.12, note: p.mark }]),
  ]);
  const zones: string[] = [];
  for (const deleted of [false, true]) {
    const z = await q(
      `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, created_by, deleted_at) VALUES ($1, 'exclusion', $2, '{"type":"Point","coordinates":[-1.1,52.9]}', 50, 'om-x', $3) RETURNING id`,
      [p.subject, `home of ${p.mark}`, deleted ? new Date('2026-11-05') : null],
    );
    zones.push(z.rows[0].id);
    await q(`INSERT INTO zone_states (subject_id, zone_id, state) VALUES ($1, $2, '{"inside":false}')`, [p.subject, z.rows[0].id]);
  }
  const a = await q(
    `INSERT INTO alerts (type, severity, subject_id, device_id, zone_id, started_at, evidence) VALUES ('exclusion_breach', 'high', $1, $2, $3, '2026-11-02T00:10:00Z', $4) RETURNING id`,
    [p.subject, p.device, zones[1], JSON.stringify([{ ts: '2026-11-02T00:10:00Z', lat: 52.9, lon: -1.1, note: p.mark }])],
  );
  const alert = a.rows[0].id as string;
  const ev = await q(`INSERT INTO alert_events (alert_id, actor, action, note) VALUES ($1, 'system', 'raised', $2) RETURNING id`, [alert, p.mark]);
  const hook = await q(`INSERT INTO webhooks (owner_id, owner_role, url, secret) VALUES ('om-x', 'offender_manager', 'https://example.org/hook', 'secret-secret-1234') RETURNING id`);
  const del = await q(`INSERT INTO webhook_deliveries (webhook_id, event_id, last_error) VALUES ($1, $2, $3) RETURNING id`, [hook.rows[0].id, ev.rows[0].id, `refused: ${p.mark}`]);
  await q(`INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms) VALUES ($1, 500, $2, 12)`, [del.rows[0].id, `500 for ${p.mark}`]);
  await q(`INSERT INTO email_deliveries (user_id, email, event_id, last_error) VALUES ('om-x', 'om-x@example.org', $1, $2)`, [ev.rows[0].id, `bounce ${p.mark}`]);
  await q(`INSERT INTO alcohol_params (version, params) VALUES ('v-test', '{}') ON CONFLICT DO NOTHING`);
  await q(`INSERT INTO alcohol_days (subject_id, date, status, reviewed_status, covered_minutes, drinking_events, tampers, params_version) VALUES ($1, '2026-11-02', 'sober', 'sober', 1400, 0, 0, 'v-test')`, [p.subject]);
  await q(`INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days) VALUES ($1, '2026-11-01', 1, 0, 0, 0)`, [p.subject]);
  await q(`INSERT INTO device_health (device_id, last_received_at, last_ts) VALUES ($1, '2026-11-02T00:30:00Z', '2026-11-02T00:30:00Z')`, [p.device]);
  await q(`INSERT INTO geofence_progress (device_id, watermark) VALUES ($1, '2026-11-02T00:30:00Z')`, [p.device]);
  await q(`INSERT INTO alcohol_progress (device_id, watermark) VALUES ($1, '2026-11-02T00:30:00Z')`, [p.device]);
  return { alert, zones };
}

/** Text-like columns of every base table but the audit log, from information_schema. */
async function searchableColumns(q: Queryable): Promise<Array<{ table: string; column: string; type: string }>> {
  const r = await q.query(
    `SELECT c.table_name AS table, c.column_name AS column, c.data_type AS type
       FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
      WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name NOT IN ('audit_log', 'pgmigrations')
        AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'uuid', 'ARRAY')
      ORDER BY 1, 2`,
  );
  return r.rows;
}

/** `table.column` where any needle occurs (as text; bytea as escaped text), via one generated query per column. */
async function findAnywhere(q: Queryable, needles: string[], skip: (table: string) => boolean = () => false): Promise<string[]> {
  const found: string[] = [];
  for (const { table, column, type } of await searchableColumns(q)) {
    if (skip(table)) continue;
    const col = `"${column.replace(/"/g, '""')}"`;
    const asText = type === 'bytea' ? `encode(${col}, 'escape')` : `${col}::text`;
    const r = await q.query(`SELECT count(*)::int n FROM "${table.replace(/"/g, '""')}" WHERE ${asText} LIKE ANY ($1)`, [needles.map((n) => `%${n}%`)]);
    if (r.rows[0].n > 0) found.push(`${table}.${column}`);
  }
  return found;
}

const needlesOf = (p: Person, ids: { alert: string; zones: string[] }) => [p.subject, p.device, p.name, p.mark, ids.alert, ...ids.zones];

let erased: { alert: string; zones: string[] };
let kept: { alert: string; zones: string[] };

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  erased = await seed(ERASED);
  kept = await seed(KEPT);
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('erasure of a subject', () => {
  it('the generated search finds a subject’s data in every table that holds it (it can fail)', async () => {
    const found = await findAnywhere(db.pool, needlesOf(ERASED, erased));
    for (const t of ['readings', 'rejections', 'zones', 'zone_states', 'alerts', 'alert_events', 'webhook_deliveries', 'webhook_attempts', 'email_deliveries', 'alcohol_days', 'alcohol_day_months', 'device_health', 'geofence_progress', 'alcohol_progress', 'assignments', 'subjects', 'devices']) {
      expect(found.some((f) => f.startsWith(`${t}.`)), t).toBe(true);
    }
  });

  it('leaves nothing of the subject outside the audit log, deactivates its devices and keeps the other subject whole', async () => {
    const before = await findAnywhere(db.pool, needlesOf(KEPT, kept));
    const r = await svc.app.inject({ method: 'DELETE', url: `/v1/subjects/${ERASED.subject}`, headers: await authHeader('admin'), payload: { reason: 'court order 2026/77' } });
    expect(r.statusCode, r.body).toBe(200);
    // the device row stays (the tag is hardware, reissued later), deactivated; nothing else names it
    expect(await findAnywhere(db.pool, needlesOf(ERASED, erased), (t) => t === 'devices')).toEqual([]);
    const dev = await db.pool.query(`SELECT active FROM devices WHERE id = $1`, [ERASED.device]);
    expect(dev.rows).toEqual([{ active: false }]);
    expect(await findAnywhere(db.pool, needlesOf(KEPT, kept))).toEqual(before);
    const audit = await db.pool.query(`SELECT action, detail->>'reason' reason FROM audit_log WHERE subject_id = $1 AND action = 'subject.erase'`, [ERASED.subject]);
    expect(audit.rows).toEqual([{ action: 'subject.erase', reason: 'court order 2026/77' }]);
  });
});

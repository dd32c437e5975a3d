import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { deleteExpiredReadings } from '../../ingest/retention.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  const admin = await authHeader('admin');
  await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: { id: 'E-D1', kind: 'combined' } });
  await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id: 'E-S1', display_name: 'Erin Erased', cohort: 'flex', rag: 'amber', offender_manager_ids: ['om-1'] } });
  await svc.app.inject({ method: 'POST', url: '/v1/subjects/E-S1/assignments', headers: admin, payload: { device_id: 'E-D1', start: '2026-11-01T00:00:00Z' } });
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT 'E-D1', 'gps', t, 52.9, -1.1, 10, '{}'::jsonb FROM generate_series('2026-11-02'::timestamptz, '2026-11-02 01:00', interval '1 minute') t`,
  );
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('audit log, erasure and retention', () => {
  it('logs every read of a trail with who, what, when and which subject, and shows it to admins only', async () => {
    const om = await authHeader('offender_manager', 'om-1');
    const r = await svc.app.inject({ method: 'GET', url: '/v1/subjects/E-S1/track?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z', headers: om });
    expect(r.json().features).toHaveLength(61);
    const audit = await svc.app.inject({ method: 'GET', url: '/v1/audit?subject_id=E-S1&actor=om-1', headers: await authHeader('admin') });
    expect(audit.statusCode).toBe(200);
    expect(audit.json().items).toEqual([expect.objectContaining({ actor: 'om-1', role: 'offender_manager', action: 'track.read', subject_id: 'E-S1', at: expect.any(String) })]);
    expect((await svc.app.inject({ method: 'GET', url: '/v1/audit', headers: await authHeader('supervisor') })).statusCode).toBe(403);
    // newest first by number, across more than ten entries
    for (let i = 0; i < 12; i++) await svc.app.inject({ method: 'GET', url: '/v1/subjects', headers: await authHeader('supervisor') });
    const all = (await svc.app.inject({ method: 'GET', url: '/v1/audit', headers: await authHeader('admin') })).json().items as Array<{ id: string }>;
    const ids = all.map((e) => Number(e.id));
    expect(ids.length).toBeGreaterThan(10);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
  });

  it('keeps the audit log append-only, even for the service’s own database role', async () => {
    await expect(db.pool.query(`UPDATE audit_log SET actor = 'someone-else'`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`DELETE FROM audit_log`)).rejects.toThrow(/append-only/);
  });

  it('erases a subject on instruction and audits the erasure', async () => {
    const admin = await authHeader('admin');
    expect((await svc.app.inject({ method: 'DELETE', url: '/v1/subjects/E-S1', headers: admin, payload: {} })).statusCode).toBe(400); // a reason is required
    const r = await svc.app.inject({ method: 'DELETE', url: '/v1/subjects/E-S1', headers: admin, payload: { reason: 'court order 2026/123' } });
    expect(r.json()).toEqual({ erased: 'E-S1', readings: 61 });
    const left = await db.pool.query(`SELECT (SELECT count(*) FROM readings WHERE device_id = 'E-D1')::int r, (SELECT count(*) FROM subjects WHERE id = 'E-S1')::int s, (SELECT count(*) FROM assignments WHERE subject_id = 'E-S1')::int a`);
    expect(left.rows[0]).toEqual({ r: 0, s: 0, a: 0 });
    const audit = await db.pool.query(`SELECT action, detail->>'reason' reason FROM audit_log WHERE subject_id = 'E-S1' ORDER BY id`);
    expect(audit.rows.map((x) => x.action)).toEqual(['subject.create', 'assignment.create', 'track.read', 'audit.read', 'subject.erase']);
    expect(audit.rows[4].reason).toBe('court order 2026/123');
    expect((await svc.app.inject({ method: 'DELETE', url: '/v1/subjects/E-S1', headers: admin, payload: { reason: 'again' } })).statusCode).toBe(404);
  });

  it('drops raw readings older than the retention on plain PostgreSQL, keeping younger ones', async () => {
    await db.pool.query(
      `INSERT INTO readings (device_id, stream, ts, battery_pct, data) VALUES ('E-D1', 'status', now() - interval '100 days', 50, '{}'), ('E-D1', 'status', now() - interval '10 days', 50, '{}')`,
    );
    expect(await deleteExpiredReadings(db.pool, 30, new Date())).toBe(1);
    const left = await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id = 'E-D1'`);
    expect(left.rows[0].n).toBe(1);
  });
});

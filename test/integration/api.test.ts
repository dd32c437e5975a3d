import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT } from 'jose';
import { authHeader, createTestDatabase, stack, startTestService, testConfig, type TestService } from '../support/env.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  const admin = await authHeader('admin');
  for (const [id, om] of [['S-A', ['om-1']], ['S-B', ['om-2']], ['S-C', ['om-1', 'om-2']]] as const) {
    const r = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id, display_name: `Person ${id}`, cohort: 'fixed', rag: 'red', offender_manager_ids: om } });
    expect(r.statusCode).toBe(201);
  }
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const get = async (url: string, headers: Record<string, string> = {}) => svc.app.inject({ method: 'GET', url, headers });

describe('authentication', () => {
  const secret = () => new TextEncoder().encode(stack().JWT_SECRET);
  it('answers 401 problem+json without a token', async () => {
    const r = await get('/v1/subjects');
    expect(r.statusCode).toBe(401);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.json()).toEqual({ type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'a Bearer token is required', instance: '/v1/subjects' });
  });
  it.each([
    ['expired', async () => new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(secret())],
    ['unsigned (alg none)', async () => new UnsecuredJWT({ role: 'admin' }).setSubject('a').encode()],
    ['wrongly signed', async () => new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setAudience('tagwatch').setExpirationTime('5m').sign(new TextEncoder().encode('y'.repeat(40)))],
    ['without a role', async () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setAudience('tagwatch').setExpirationTime('5m').sign(secret())],
    ['with an unknown role', async () => new SignJWT({ role: 'root' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setAudience('tagwatch').setExpirationTime('5m').sign(secret())],
  ])('refuses a token that is %s', async (_name, make) => {
    const r = await get('/v1/subjects', { authorization: `Bearer ${await make()}` });
    expect(r.statusCode).toBe(401);
  });
  it('answers 403 for a role the route does not allow', async () => {
    const r = await get('/v1/rejections', await authHeader('offender_manager', 'om-1'));
    expect(r.statusCode).toBe(403);
    expect(r.json().title).toBe('Forbidden');
  });
  it('keeps health, readiness and the OpenAPI document public, and metrics authenticated', async () => {
    expect((await get('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await get('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', checks: { database: true, redis: true }, storage: 'postgresql' });
    const doc = await get('/docs/json');
    expect(doc.statusCode).toBe(200);
    expect(Object.keys(doc.json().paths)).toEqual(expect.arrayContaining(['/v1/devices', '/v1/subjects/{id}/track', '/v1/rejections']));
    expect((await get('/metrics')).statusCode).toBe(401);
    const m = await get('/metrics', await authHeader('admin'));
    expect(m.statusCode).toBe(200);
    expect(m.body).toContain('tagwatch_readings_stored_total');
  });
});

describe('subjects and caseloads', () => {
  it('shows an offender manager only their caseload, a supervisor everyone', async () => {
    const om1 = await get('/v1/subjects', await authHeader('offender_manager', 'om-1'));
    expect(om1.json().items.map((s: { id: string }) => s.id)).toEqual(['S-A', 'S-C']);
    const sup = await get('/v1/subjects', await authHeader('supervisor'));
    expect(sup.json().items.map((s: { id: string }) => s.id)).toEqual(['S-A', 'S-B', 'S-C']);
    expect((await get('/v1/subjects/S-B', await authHeader('offender_manager', 'om-1'))).statusCode).toBe(404);
    expect((await get('/v1/subjects/S-B', await authHeader('offender_manager', 'om-2'))).statusCode).toBe(200);
    expect((await get('/v1/subjects', await authHeader('analyst'))).statusCode).toBe(403);
  });
  it('refuses bad subjects with 400 and why', async () => {
    const admin = await authHeader('admin');
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ id: 'bad id', display_name: 'x', cohort: 'fixed', rag: 'red' }, /id/],
      [{ id: 'S-X', display_name: 'x', cohort: 'loose', rag: 'red' }, /cohort/],
      [{ id: 'S-X', display_name: 'x', cohort: 'fixed', rag: 'red', timezone: 'Mars/Olympus' }, /not an IANA time zone/],
      [{ id: 'S-X', display_name: 'x', cohort: 'fixed', rag: 'red', shoe_size: 9 }, /additional/i],
    ];
    for (const [payload, detail] of cases) {
      const r = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().detail).toMatch(detail);
    }
    const dup = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id: 'S-A', display_name: 'x', cohort: 'fixed', rag: 'red' } });
    expect(dup.statusCode).toBe(409);
  });
});

describe('devices and assignments', () => {
  it('returns the MQTT password once and never again', async () => {
    const admin = await authHeader('admin');
    const r = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: { id: 'DEV-1', kind: 'gps' } });
    expect(r.statusCode).toBe(201);
    expect(r.json().mqtt_password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const again = await get('/v1/devices/DEV-1', admin);
    expect(again.json()).toEqual({ id: 'DEV-1', kind: 'gps', active: true, created_at: expect.any(String) });
    const stored = await db.pool.query(`SELECT mqtt_password_hash FROM devices WHERE id = 'DEV-1'`);
    expect(stored.rows[0].mqtt_password_hash).not.toContain(r.json().mqtt_password);
    expect((await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: { id: 'DEV-1', kind: 'gps' } })).statusCode).toBe(409);
  });
  it('fits a device to one subject at a time and ends assignments', async () => {
    const admin = await authHeader('admin');
    await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: { id: 'DEV-2', kind: 'combined' } });
    const fit = (subject: string, start: string) =>
      svc.app.inject({ method: 'POST', url: `/v1/subjects/${subject}/assignments`, headers: admin, payload: { device_id: 'DEV-2', start } });
    const a = await fit('S-A', '2026-11-01T00:00:00Z');
    expect(a.statusCode).toBe(201);
    expect(a.json()).toEqual({ id: expect.any(String), subject_id: 'S-A', device_id: 'DEV-2', start: '2026-11-01T00:00:00.000Z', end: null });
    const clash = await fit('S-B', '2026-11-05T00:00:00Z');
    expect(clash.statusCode).toBe(409);
    expect(clash.json().detail).toMatch(/fitted to S-A/);
    const end = await svc.app.inject({ method: 'POST', url: `/v1/subjects/S-A/assignments/${a.json().id}/end`, headers: admin, payload: { end: '2026-11-04T00:00:00Z' } });
    expect(end.statusCode).toBe(200);
    expect(end.json().end).toBe('2026-11-04T00:00:00.000Z');
    expect((await fit('S-B', '2026-11-03T00:00:00Z')).statusCode).toBe(409);
    expect((await fit('S-B', '2026-11-04T00:00:00Z')).statusCode).toBe(201);
    const again = await svc.app.inject({ method: 'POST', url: `/v1/subjects/S-A/assignments/${a.json().id}/end`, headers: admin, payload: { end: '2026-11-06T00:00:00Z' } });
    expect(again.statusCode).toBe(409);
    expect((await fit('NOBODY', '2026-11-04T00:00:00Z')).statusCode).toBe(404);
  });
  it('validates the track query', async () => {
    const om = await authHeader('offender_manager', 'om-1');
    expect((await get('/v1/subjects/S-A/track?from=yesterday&to=2026-11-02T00:00:00Z', om)).statusCode).toBe(400);
    expect((await get('/v1/subjects/S-A/track?from=2026-11-03T00:00:00Z&to=2026-11-02T00:00:00Z', om)).statusCode).toBe(400);
    expect((await get('/v1/subjects/S-A/track?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&bbox=1', om)).statusCode).toBe(400);
    const ok = await get('/v1/subjects/S-A/track?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z', om);
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ type: 'FeatureCollection', features: [], truncated: false });
    expect((await get('/v1/subjects/S-A/track?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z', await authHeader('analyst'))).statusCode).toBe(403);
  });
  it('answers unknown routes with a 404 problem', async () => {
    const r = await get('/v1/nothing', await authHeader('admin'));
    expect(r.statusCode).toBe(404);
    expect(r.headers['content-type']).toMatch(/problem\+json/);
  });
});

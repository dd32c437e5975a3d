import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { loadRules } from '../../geofence/zones.repo.js';
import { reevaluate } from '../../geofence/reevaluate.js';
import { subjectFixes } from '../../ingest/readings.repo.js';

/**
 * Issue 9, finding 9: zone geometry and re-evaluation are bounded. A zone has at most 10,000
 * vertices; a re-evaluation covers at most 31 days and REEVALUATE_MAX_FIXES fixes, read in
 * chunks (REEVALUATE_CHUNK = 10,000) with the same result as one pass.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
const MAX_FIXES = 20_000;

async function api(method: 'POST', url: string, payload: unknown) {
  return svc.app.inject({ method, url, headers: { ...(await authHeader('admin')), 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
}

function ring(n: number, r = 0.01): number[][] {
  const pts = Array.from({ length: n - 1 }, (_, i) => [-1.15 + r * Math.cos((2 * Math.PI * i) / (n - 1)), 52.95 + r * Math.sin((2 * Math.PI * i) / (n - 1))]);
  return [...pts, pts[0]!];
}

const zone = (coordinates: number[][][]) => ({ type: 'Feature', geometry: { type: 'Polygon', coordinates }, properties: { kind: 'exclusion', grace_s: 60 } });

async function subject(pool: Pool, id: string) {
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY['om-1'])`, [id]);
  await pool.query(`INSERT INTO devices (id, kind) VALUES ($1, 'gps')`, [`${id}-D`]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, now() - interval '20 days')`, [id, `${id}-D`]);
}

/** `n` fixes every 10 s from `from`, a walk in and out of the circle zone (about 4 minutes in every 10). */
async function walk(pool: Pool, device: string, from: number, n: number) {
  await pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', to_timestamp(($2::float8 + i * 10000) / 1000), CASE WHEN i % 60 < 25 THEN 52.95 ELSE 52.9589932 END, -1.15, 10, '{}'::jsonb
       FROM generate_series(0, $3::int - 1) i`,
    [device, from, n],
  );
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, REEVALUATE_MAX_FIXES: String(MAX_FIXES) }));
  await subject(db.pool, 'V-S1');
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('zone vertex limit over HTTP', () => {
  it('refuses a polygon of 10,001 vertices with 400 naming the limit, storing nothing', async () => {
    const r = await api('POST', '/v1/subjects/V-S1/zones', zone([ring(10_001)]));
    expect([r.statusCode, r.headers['content-type'], r.json().detail]).toEqual([400, 'application/problem+json; charset=utf-8', 'invalid zone: a zone has at most 10000 vertices, this one has 10001']);
    expect((await db.pool.query(`SELECT count(*)::int n FROM zones`)).rows[0].n).toBe(0);
  });

  it('accepts the largest allowed polygon (10,000 vertices)', async () => {
    const r = await api('POST', '/v1/subjects/V-S1/zones', zone([ring(10_000)]));
    expect(r.statusCode).toBe(201);
    await db.pool.query(`DELETE FROM zones`);
  });

  it('refuses a body over the 1 MiB limit with 413 problem details', async () => {
    const r = await api('POST', '/v1/subjects/V-S1/zones', zone([ring(60_000)]));
    expect([r.statusCode, r.headers['content-type']]).toEqual([413, 'application/problem+json; charset=utf-8']);
  });
});

describe('re-evaluation bounds', () => {
  it('refuses a period over 31 days with 400', async () => {
    const r = await api('POST', '/v1/subjects/V-S1/reevaluate', { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:01Z' });
    expect([r.statusCode, r.json().detail]).toEqual([400, 'a re-evaluation covers at most 31 days: ask for several shorter periods']);
  });

  it('refuses a period holding more than REEVALUATE_MAX_FIXES fixes with 422', async () => {
    await subject(db.pool, 'V-S2');
    const from = Date.now() - 5 * 86400_000;
    await walk(db.pool, 'V-S2-D', from, MAX_FIXES + 1);
    const r = await api('POST', '/v1/subjects/V-S2/reevaluate', { from: new Date(from).toISOString(), to: new Date().toISOString() });
    expect([r.statusCode, r.json().detail]).toEqual([422, `the period holds more than ${MAX_FIXES} fixes, the most one re-evaluation reads: ask for a shorter period`]);
    const ok = await api('POST', '/v1/subjects/V-S2/reevaluate', { from: new Date(from + 10_000).toISOString(), to: new Date().toISOString() });
    expect(ok.statusCode).toBe(200);
  });

  it('over more fixes than one chunk, reports the breaches one pass over all of them finds', async () => {
    await subject(db.pool, 'V-S3');
    const created = await api('POST', '/v1/subjects/V-S3/zones', { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.15, 52.95] }, properties: { kind: 'exclusion', radius_m: 300, grace_s: 60 } });
    expect(created.statusCode).toBe(201);
    await db.pool.query(`UPDATE zones SET created_at = now() - interval '10 days' WHERE subject_id = 'V-S3'`);
    const from = Date.now() - 4 * 86400_000;
    await walk(db.pool, 'V-S3-D', from, 15_000);
    const body = { from: new Date(from - 60_000).toISOString(), to: new Date().toISOString() };
    const r = await api('POST', '/v1/subjects/V-S3/reevaluate', body);
    expect(r.statusCode).toBe(200);
    const all = await subjectFixes(db.pool, 'V-S3', new Date(body.from), new Date(body.to), 1_000_000);
    const expected = reevaluate(await loadRules(db.pool, 'V-S3'), all.map((f) => ({ ts: f.ts.getTime(), lon: f.lon, lat: f.lat, accuracy_m: f.accuracy_m })), Date.parse(body.from), Date.parse(body.to));
    expect(expected.fixes).toBe(15_000);
    expect(expected.breaches.length).toBe(15_000 / 60);
    expect(r.json()).toEqual(expected);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { parse } from 'csv-parse/sync';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';

// A data subject's access request: GET /v1/subjects/{id}/export (admin) answers one zip of JSON
// and CSV files with everything held about them, and nothing of anyone else.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

async function setUp(subject: string, device: string, name: string, lat: number) {
  const admin = await authHeader('admin');
  const post = async (url: string, payload: object, headers = admin) => {
    const r = await svc.app.inject({ method: 'POST', url, headers, payload });
    expect(r.statusCode, `${url}: ${r.body}`).toBeLessThan(300);
    return r.json();
  };
  await post('/v1/devices', { id: device, kind: 'combined' });
  await post('/v1/subjects', { id: subject, display_name: name, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-e'] });
  await post(`/v1/subjects/${subject}/assignments`, { device_id: device, start: '2026-10-01T00:00:00Z' });
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', t, $2, -1.1, 10, '{"sats":7}' FROM generate_series('2026-10-02'::timestamptz, '2026-10-02 00:09', interval '1 minute') t`,
    [device, lat],
  );
  await db.pool.query(`INSERT INTO rejections (received_at, topic, device_id, reason, raw) VALUES ('2026-10-03', $1, $2, 'schema', convert_to('{"lat":1}', 'UTF8'))`, [`tags/v1/${device}/gps`, device]);
  const zone = await post(`/v1/subjects/${subject}/zones`, { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.1, lat] }, properties: { kind: 'exclusion', radius_m: 100, name: `zone of ${name}` } }, await authHeader('offender_manager', 'om-e'));
  const a = await db.pool.query(
    `INSERT INTO alerts (type, severity, subject_id, device_id, started_at, evidence) VALUES ('exclusion_breach', 'high', $1, $2, '2026-10-02T00:05:00Z', '[{"lat":1}]') RETURNING id`,
    [subject, device],
  );
  await db.pool.query(`INSERT INTO alert_events (alert_id, actor, action, note) VALUES ($1, 'system', 'raised', NULL), ($1, 'om-e', 'acknowledged', 'called them')`, [a.rows[0].id]);
  await db.pool.query(`INSERT INTO alcohol_params (version, params) VALUES ('v-exp', '{}') ON CONFLICT DO NOTHING`);
  await db.pool.query(`INSERT INTO alcohol_days (subject_id, date, status, reviewed_status, covered_minutes, drinking_events, tampers, params_version) VALUES ($1, '2026-10-02', 'sober', 'sober', 1440, 0, 0, 'v-exp'), ($1, '2026-10-03', 'drinking', 'drinking', 1300, 1, 0, 'v-exp')`, [subject]);
  // a read of the trail, so the audit log has a row about them besides the creation
  await svc.app.inject({ method: 'GET', url: `/v1/subjects/${subject}/track?from=2026-10-02T00:00:00Z&to=2026-10-03T00:00:00Z`, headers: await authHeader('offender_manager', 'om-e') });
  return { alert: a.rows[0].id as string, zone: zone.id as string };
}

/** Entries of a zip held in memory, by name. */
function unzip(buf: Buffer): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, string>();
      zip.on('entry', (e: yauzl.Entry) => {
        zip.openReadStream(e, (err2, s) => {
          if (err2 || !s) return reject(err2);
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            out.set(e.fileName, Buffer.concat(chunks).toString('utf8'));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

let mine: { alert: string; zone: string };

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  mine = await setUp('SAR-S1', 'SAR-D1', 'Sam Access', 52.91);
  await setUp('SAR-S2', 'SAR-D2', 'Other Person', 52.95);
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('subject access export', () => {
  it('answers one zip with every file, whose contents are the subject’s data and nobody else’s, and audits it', async () => {
    const r = await svc.app.inject({ method: 'GET', url: '/v1/subjects/SAR-S1/export', headers: await authHeader('admin', 'admin-sar') });
    expect(r.statusCode, r.body.slice(0, 300)).toBe(200);
    expect(r.headers['content-type']).toBe('application/zip');
    expect(r.headers['content-disposition']).toMatch(/^attachment; filename="subject-SAR-S1-\d{4}-\d\d-\d\d\.zip"$/);
    const files = await unzip(r.rawPayload);
    expect([...files.keys()]).toEqual(['manifest.json', 'subject.json', 'assignments.csv', 'readings.csv', 'rejections.csv', 'alerts.json', 'alert_events.csv', 'zones.json', 'days.csv', 'audit.csv']);
    const csv = (name: string) => parse(files.get(name)!, { columns: true }) as Array<Record<string, string>>;

    expect(JSON.parse(files.get('manifest.json')!)).toMatchObject({ subject_id: 'SAR-S1', files: [...files.keys()] });
    expect(JSON.parse(files.get('subject.json')!)).toMatchObject({ id: 'SAR-S1', display_name: 'Sam Access', cohort: 'fixed', offender_manager_ids: ['om-e'] });
    expect(csv('assignments.csv').map((a) => [a.device_id, a.end_at])).toEqual([['SAR-D1', '']]);
    const readings = csv('readings.csv');
    expect(readings).toHaveLength(10);
    expect(new Set(readings.map((x) => `${x.device_id} ${x.lat}`))).toEqual(new Set(['SAR-D1 52.91']));
    expect(JSON.parse(readings[0]!.data!)).toEqual({ sats: 7 });
    expect(csv('rejections.csv').map((x) => [x.device_id, x.raw])).toEqual([['SAR-D1', '{"lat":1}']]);
    const alerts = JSON.parse(files.get('alerts.json')!);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ id: mine.alert, subject_id: 'SAR-S1', type: 'exclusion_breach' });
    expect(alerts[0].history.map((h: { action: string; note: string | null }) => [h.action, h.note])).toEqual([['raised', null], ['acknowledged', 'called them']]);
    expect(csv('alert_events.csv').map((e) => [e.alert_id, e.action])).toEqual([[mine.alert, 'raised'], [mine.alert, 'acknowledged']]);
    expect(JSON.parse(files.get('zones.json')!).map((z: { id: string; name: string }) => [z.id, z.name])).toEqual([[mine.zone, 'zone of Sam Access']]);
    expect(csv('days.csv').map((d) => [d.date, d.status])).toEqual([['2026-10-02', 'sober'], ['2026-10-03', 'drinking']]);
    const audit = csv('audit.csv');
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['subject.create', 'assignment.create', 'zone.create', 'track.read', 'subject.export']));
    expect(new Set(audit.map((a) => a.subject_id))).toEqual(new Set(['SAR-S1']));
    // nothing of the other subject anywhere in the archive
    for (const [name, text] of files) {
      for (const other of ['SAR-S2', 'SAR-D2', 'Other Person', '52.95']) expect(text.includes(other), `${other} in ${name}`).toBe(false);
    }
    const row = await db.pool.query(`SELECT actor, role FROM audit_log WHERE action = 'subject.export' AND subject_id = 'SAR-S1'`);
    expect(row.rows).toEqual([{ actor: 'admin-sar', role: 'admin' }]);
  });

  it('is for admins only, and answers 404 for an unknown subject', async () => {
    for (const role of ['supervisor', 'offender_manager', 'analyst'] as const) {
      const r = await svc.app.inject({ method: 'GET', url: '/v1/subjects/SAR-S1/export', headers: await authHeader(role, role === 'offender_manager' ? 'om-e' : undefined) });
      expect(r.statusCode, role).toBe(403);
    }
    const r = await svc.app.inject({ method: 'GET', url: '/v1/subjects/NOBODY/export', headers: await authHeader('admin') });
    expect(r.statusCode).toBe(404);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

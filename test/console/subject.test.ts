import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { ConsoleClient, csrfOf } from './support.js';

/** The subject page's map part and the replay's track endpoint (issue 11, page 4). */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
const MIN = 60_000;
/** the first of 120 fixes at one a minute, ending 10 minutes ago */
const T0 = Math.floor((Date.now() - 130 * MIN) / 1000) * 1000;
const N = 120;

async function admin(url: string, payload: object) {
  const res = await svc.app.inject({ method: 'POST', url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  await admin('/v1/subjects', { id: 'M-S1', display_name: 'Dana Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await admin('/v1/subjects', { id: 'M-S2', display_name: 'Eve Other', cohort: 'flex', rag: 'green', offender_manager_ids: ['om-2'] });
  await admin('/v1/devices', { id: 'M-D1', kind: 'gps' });
  await admin('/v1/subjects/M-S1/assignments', { device_id: 'M-D1', start: new Date(T0 - 3600_000).toISOString() });
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data)
     SELECT 'M-D1', 'gps', to_timestamp(($1::float8 + i * 60000) / 1000), to_timestamp(($1::float8 + i * 60000 + 3000) / 1000), 52.95 + i / 1e4, -1.15 - i / 1e4, 5 + i % 20, '{}'
       FROM generate_series(0, $2::int - 1) AS i`,
    [T0, N],
  );
  const zone = (name: string, kind: string, geometry: object, extra: object) => admin('/v1/subjects/M-S1/zones', { type: 'Feature', geometry, properties: { kind, name, ...extra } });
  await zone('Home', 'inclusion', { type: 'Point', coordinates: [-1.15, 52.95] }, { radius_m: 80, schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '19:00', end: '07:00' }] });
  await zone('Victim address', 'exclusion', { type: 'Polygon', coordinates: [[[-1.2, 52.9], [-1.19, 52.9], [-1.19, 52.91], [-1.2, 52.91], [-1.2, 52.9]]] }, {});
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null; detail: Record<string, unknown> }>;

const iso = (ms: number) => new Date(ms).toISOString();
const trackUrl = (id: string, from: string, to: string) => `/console/subjects/${id}/track?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;

async function manager(id = 'om-1'): Promise<ConsoleClient> {
  const c = new ConsoleClient(svc.app);
  await c.signIn('offender_manager', id);
  return c;
}

describe('the subject page: latest position, zones, track period', () => {
  it('shows the latest fix with its accuracy and device time, the live zones with their schedules in words, and the last 24 h as the default period', async () => {
    const c = await manager();
    const res = await c.get('/console/subjects/M-S1');
    expect(res.statusCode).toBe(200);
    const last = T0 + (N - 1) * MIN;
    expect(res.body).toContain('Latest position (device time)');
    expect(res.body).toContain(`Within ${5 + ((N - 1) % 20)} metres`);
    expect(res.body).toContain((52.95 + (N - 1) / 1e4).toFixed(4));
    expect(res.body).toMatch(/Every day, 19:00 to 07:00 the next day\. Grace 60 seconds\./);
    expect(res.body).toContain('Victim address');
    expect(res.body).toMatch(/Always\. Grace 60 seconds\./);
    // the page data: the track URL of the default period (last 24 h) and both zones for the map
    const data = JSON.parse(/<script type="application\/json" id="subject-map-data">([^<]*)<\/script>/.exec(res.body)![1]!);
    expect(data.zones.map((z: { name: string }) => z.name)).toEqual(['Home', 'Victim address']);
    expect(data.latest).toMatchObject({ ts: iso(last), accuracy_m: 5 + ((N - 1) % 20) });
    const u = new URL(data.track, 'http://x');
    expect(Date.parse(u.searchParams.get('to')!) - Date.parse(u.searchParams.get('from')!)).toBe(24 * 3600_000);
    expect(res.body).toContain('src="/console/assets/js/subject-replay.js"');
    const rows = await auditRows('om-1', 'track.read');
    expect(rows.at(-1)).toMatchObject({ subject_id: 'M-S1', detail: { via: 'console.subject', latest_fix_at: iso(last), fixes: 1 } });
    expect((await auditRows('om-1', 'zone.list')).at(-1)).toMatchObject({ subject_id: 'M-S1', detail: { via: 'console.subject' } });
  });

  it('shows a wrong period in the error summary with links to the fields', async () => {
    const c = await manager();
    const bad = await c.get('/console/subjects/M-S1?from=yesterday&to=2026-12-01T09:00');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('govuk-error-summary');
    expect(bad.body).toContain('href="#track-from"');
    expect(bad.body).toContain('The start date and time must be a real date and time');
    const long = await c.get('/console/subjects/M-S1?from=2026-11-01T09:00&to=2026-11-09T09:00');
    expect(long.statusCode).toBe(400);
    expect(long.body).toContain('The period must be 7 days or shorter');
    const ok = await c.get('/console/subjects/M-S1?from=2026-11-01T09:00&to=2026-11-02T09:00');
    expect(ok.statusCode).toBe(200);
    // wall-clock time in the person's time zone (Europe/London: GMT in November)
    expect(ok.body).toContain(encodeURIComponent('2026-11-01T09:00:00.000Z'));
  });
});

describe('GET /console/subjects/{id}/track (the replay data)', () => {
  it('answers the fixes of the period as columns in device-time order, and audits the read with the period', async () => {
    const c = await manager();
    const from = iso(T0 + 10 * MIN);
    const to = iso(T0 + 20 * MIN);
    const res = await c.get(trackUrl('M-S1', from, to));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(body).toMatchObject({ from, to, count: 10, truncated: false });
    expect(body.ts).toEqual(Array.from({ length: 10 }, (_, k) => T0 + (10 + k) * MIN));
    expect(body.lat[0]).toBeCloseTo(52.95 + 10 / 1e4, 9);
    expect(body.lon[0]).toBeCloseTo(-1.15 - 10 / 1e4, 9);
    expect(body.accuracy_m[0]).toBe(15);
    const rows = await auditRows('om-1', 'track.read');
    expect(rows.at(-1)).toEqual({ subject_id: 'M-S1', reason: null, detail: { via: 'console.replay', from, to, fixes: 10 } });
  });

  it('answers 404 for another manager’s person, and audits nothing', async () => {
    const c = await manager();
    const before = (await auditRows('om-1', 'track.read')).length;
    const res = await c.get(trackUrl('M-S2', iso(T0), iso(T0 + 3600_000)));
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().detail).toContain('M-S2');
    expect((await auditRows('om-1', 'track.read')).length).toBe(before);
    // the other manager reads their own
    expect((await (await manager('om-2')).get(trackUrl('M-S2', iso(T0), iso(T0 + 3600_000)))).statusCode).toBe(200);
  });

  it('refuses a missing, malformed, reversed or longer than 7 days period with a clear 400', async () => {
    const c = await manager();
    const cases: Array<[string, RegExp]> = [
      ['/console/subjects/M-S1/track', /from: Enter the start date and time.*to: Enter the end date and time/],
      [trackUrl('M-S1', 'yesterday', iso(T0)), /from: The start date and time must be a real date and time/],
      [trackUrl('M-S1', iso(T0), '2026-02-30T10:00:00Z'), /to: The end date and time must be a real date and time/],
      [trackUrl('M-S1', iso(T0 + MIN), iso(T0)), /to: The end must be after the start/],
      [trackUrl('M-S1', iso(T0), iso(T0 + 7 * 86_400_000 + 1000)), /to: The period must be 7 days or shorter/],
    ];
    for (const [url, detail] of cases) {
      const res = await c.get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().detail, url).toMatch(detail);
    }
    // exactly 7 days is allowed
    expect((await c.get(trackUrl('M-S1', iso(T0), iso(T0 + 7 * 86_400_000)))).statusCode).toBe(200);
  });

  it('asks a supervisor for a reason (X-Tagwatch-Reason, as the page sends the one given on its reason form) and keeps it in the audit row', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-1');
    const url = trackUrl('M-S1', iso(T0), iso(T0 + 5 * MIN));
    const bare = await c.get(url);
    expect(bare.statusCode).toBe(400);
    expect(bare.json().detail).toMatch(/reason/);
    expect(await auditRows('sup-1', 'track.read')).toEqual([]);
    const ok = await c.get(url, { 'x-tagwatch-reason': encodeURIComponent('MAPPA review – weekly') });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().count).toBe(5);
    expect(await auditRows('sup-1', 'track.read')).toEqual([{ subject_id: 'M-S1', reason: 'MAPPA review – weekly', detail: { via: 'console.replay', from: iso(T0), to: iso(T0 + 5 * MIN), fixes: 5 } }]);
  });

  it('takes a supervisor’s period through the reason form and gives the page the reason for the replay', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-2');
    const ask = await c.get('/console/subjects/M-S1?from=2026-11-01T09:00&to=2026-11-02T09:00');
    expect(ask.body).toContain('action="/console/subjects/M-S1/open?from=2026-11-01T09%3A00&amp;to=2026-11-02T09%3A00"');
    const opened = await c.post('/console/subjects/M-S1/open?from=2026-11-01T09%3A00&to=2026-11-02T09%3A00', { _csrf: csrfOf(ask.body), reason: 'escalated alert' });
    // POST-redirect-GET: the reason is kept for this record and session, the period rides along
    expect([opened.statusCode, opened.headers.location]).toEqual([303, '/console/subjects/M-S1?from=2026-11-01T09%3A00&to=2026-11-02T09%3A00']);
    const page = await c.get(opened.headers.location as string);
    expect(page.statusCode).toBe(200);
    const data = JSON.parse(/id="subject-map-data">([^<]*)</.exec(page.body)![1]!);
    expect(data.reason).toBe('escalated alert');
    expect(data.track).toContain(encodeURIComponent('2026-11-01T09:00:00.000Z'));
    // the period form is a GET: no second question while the reason is kept
    expect(page.body).toContain('<form method="get" action="/console/subjects/M-S1"');
    const again = await c.get('/console/subjects/M-S1?from=2026-11-03T09%3A00&to=2026-11-03T18%3A00');
    expect(again.statusCode).toBe(200);
    expect(JSON.parse(/id="subject-map-data">([^<]*)</.exec(again.body)![1]!).track).toContain(encodeURIComponent('2026-11-03T18:00:00.000Z'));
    expect((await auditRows('sup-2', 'track.read')).every((r) => r.reason === 'escalated alert')).toBe(true);
  });
});

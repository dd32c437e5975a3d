import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { DateTime } from 'luxon';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { evaluateDeviceGeofence } from '../../geofence/evaluate.job.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;

const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };
const circle = (props: Record<string, unknown> = {}) => ({
  type: 'Feature',
  geometry: { type: 'Point', coordinates: [-1.15, 52.95] },
  properties: { kind: 'exclusion', name: 'victim address', radius_m: 300, grace_s: 60, ...props },
});

async function api(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, who: [Parameters<typeof authHeader>[0], string?] = ['admin']) {
  return svc.app.inject({ method, url, headers: await authHeader(...who), ...(payload !== undefined ? { payload: payload as object } : {}) });
}

async function setUp(subject: string, device: string) {
  expect((await api('POST', '/v1/devices', { id: device, kind: 'gps' })).statusCode).toBe(201);
  expect((await api('POST', '/v1/subjects', { id: subject, display_name: `Person ${subject}`, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] })).statusCode).toBe(201);
  const start = new Date(Date.now() - 3 * 86400_000).toISOString();
  expect((await api('POST', `/v1/subjects/${subject}/assignments`, { device_id: device, start })).statusCode).toBe(201);
}

const fixesAt = (fromMs: number, points: Array<{ lat: number; lon: number }>) =>
  points.map((p, i) => ({ ts: new Date(fromMs + i * 30_000).toISOString(), ...p, accuracy_m: 10 }));

async function alertsOf(subject: string) {
  const r = await db.pool.query(`SELECT type, zone_id, started_at, late, status, evidence, ended_at FROM alerts WHERE subject_id = $1 ORDER BY started_at`, [subject]);
  return r.rows;
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true, worker: true });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'geofence-test-publisher' });
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

describe('zones API', () => {
  it('creates, lists and deletes zones of a subject in the caseload', async () => {
    await setUp('Z-S1', 'Z-D1');
    const created = await api('POST', '/v1/subjects/Z-S1/zones', circle(), ['offender_manager', 'om-1']);
    expect(created.statusCode).toBe(201);
    const zone = created.json();
    expect(zone).toMatchObject({ type: 'Feature', geometry: { type: 'Point' }, properties: { kind: 'exclusion', radius_m: 300, grace_s: 60, created_by: 'om-1' } });
    const list = await api('GET', '/v1/subjects/Z-S1/zones', undefined, ['offender_manager', 'om-1']);
    expect(list.json().features.map((f: { id: string }) => f.id)).toEqual([zone.id]);
    expect((await api('POST', '/v1/subjects/Z-S1/zones', circle(), ['offender_manager', 'om-2'])).statusCode).toBe(404);
    expect((await api('DELETE', `/v1/subjects/Z-S1/zones/${zone.id}`, undefined, ['offender_manager', 'om-2'])).statusCode).toBe(404);
    expect((await api('DELETE', `/v1/subjects/Z-S1/zones/${zone.id}`, undefined, ['offender_manager', 'om-1'])).statusCode).toBe(204);
    expect((await api('GET', '/v1/subjects/Z-S1/zones')).json().features).toEqual([]);
    expect((await api('POST', '/v1/subjects/Z-S1/zones', circle(), ['analyst'])).statusCode).toBe(403);
  });

  it.each([
    ['a self-intersecting polygon', { type: 'Polygon', coordinates: [[[-1.2, 52.9], [-1.1, 53.0], [-1.1, 52.9], [-1.2, 53.0], [-1.2, 52.9]]] }, {}, /intersects itself/],
    ['an unclosed ring', { type: 'Polygon', coordinates: [[[-1.2, 52.9], [-1.1, 52.9], [-1.1, 53.0], [-1.2, 53.0]]] }, {}, /not closed/],
    ['longitude 200', { type: 'Point', coordinates: [200, 52.9] }, { radius_m: 100 }, /longitude 200 is out of range/],
    ['a radius of 0', { type: 'Point', coordinates: [-1.15, 52.95] }, { radius_m: 0 }, /radius_m must be above 0/],
    ['a radius of 500 km', { type: 'Point', coordinates: [-1.15, 52.95] }, { radius_m: 500_000 }, /at most 50000/],
    ['a schedule starting at 25:00', { type: 'Point', coordinates: [-1.15, 52.95] }, { radius_m: 100, schedule: [{ days: ['mon'], start: '25:00', end: '07:00' }] }, /start must be HH:MM/],
    ['an unknown property', { type: 'Point', coordinates: [-1.15, 52.95] }, { radius_m: 100, grace: 5 }, /additional/i],
    ['a LineString', { type: 'LineString', coordinates: [[-1.2, 52.9], [-1.1, 52.9]] }, {}, /must be Polygon, MultiPolygon or Point/],
  ])('refuses %s with 400 and the reason, storing nothing', async (_n, geometry, props, reason) => {
    const before = await db.pool.query(`SELECT count(*)::int n FROM zones`);
    const r = await api('POST', '/v1/subjects/Z-S1/zones', { type: 'Feature', geometry, properties: { kind: 'exclusion', ...props } });
    expect(r.statusCode).toBe(400);
    expect(r.json().detail).toMatch(reason);
    expect((await db.pool.query(`SELECT count(*)::int n FROM zones`)).rows[0].n).toBe(before.rows[0].n);
  });
});

describe('evaluation through MQTT, ingest and the worker', () => {
  it('raises one exclusion_breach with its evidence, and a late one for readings that arrive late', async () => {
    await setUp('G-S1', 'G-D1');
    const zone = (await api('POST', '/v1/subjects/G-S1/zones', circle())).json();
    const t0 = Date.now() - 10 * 60_000;
    const walk = fixesAt(t0, [OUT, OUT, IN, IN, IN, IN, IN, OUT, OUT, OUT]);
    for (const f of walk) await pub.publishAsync('tags/v1/G-D1/gps', JSON.stringify(f), { qos: 1 });
    const [alert] = await waitFor(async () => {
      const a = await alertsOf('G-S1');
      return a.length && a[0].ended_at ? a : null;
    }, 'the exclusion breach and its end');
    expect(alert).toMatchObject({ type: 'exclusion_breach', zone_id: zone.id, late: false, status: 'open', started_at: new Date(walk[2]!.ts), ended_at: new Date(walk[7]!.ts) });
    expect(alert.evidence.map((e: { ts: string }) => e.ts)).toEqual([walk[2]!.ts, walk[3]!.ts, walk[4]!.ts]);

    // at most one open alert per (subject, type, zone): the manager acknowledges this one first
    await db.pool.query(`UPDATE alerts SET status = 'acknowledged' WHERE subject_id = 'G-S1'`);
    // a tag that lost signal sends, shuffled, an hour-old visit: evaluated in order, alerted late
    const old = fixesAt(t0 - 3600_000, [OUT, IN, IN, IN, IN, OUT, OUT, OUT]);
    await pub.publishAsync('tags/v1/G-D1/gps', JSON.stringify([...old].reverse()), { qos: 1 });
    const all = await waitFor(async () => {
      const a = await alertsOf('G-S1');
      return a.length === 2 ? a : null;
    }, 'the late breach');
    expect(all[0]).toMatchObject({ type: 'exclusion_breach', started_at: new Date(old[1]!.ts), late: true });
    expect(all[1]).toMatchObject({ started_at: new Date(walk[2]!.ts), late: false });

    // while that late alert is open, another breach of the zone is added to its history instead
    const again = fixesAt(t0 - 1800_000, [OUT, IN, IN, IN, OUT, OUT, OUT]);
    await pub.publishAsync('tags/v1/G-D1/gps', JSON.stringify(again), { qos: 1 });
    const events = await waitFor(async () => {
      const r = await db.pool.query(`SELECT e.action, e.note FROM alert_events e JOIN alerts a ON a.id = e.alert_id WHERE a.subject_id = 'G-S1' AND e.action = 'recurred'`);
      return r.rows.length ? r.rows : null;
    }, 'the recurrence');
    expect(events).toEqual([{ action: 'recurred', note: `recurred: started ${again[1]!.ts} (late readings)` }]);
    expect(await alertsOf('G-S1')).toHaveLength(2);
  });

  it('raises late a breach found in a tag’s stored readings sent after a gap, not one just received', async () => {
    await setUp('G-S2', 'G-D2');
    await api('POST', '/v1/subjects/G-S2/zones', circle());
    // a tag with no evaluated readings yet sends, at once, what it stored an hour ago
    const stored = fixesAt(Date.now() - 3600_000, [OUT, IN, IN, IN, IN, OUT, OUT, OUT]);
    await pub.publishAsync('tags/v1/G-D2/gps', JSON.stringify(stored), { qos: 1 });
    const [a] = await waitFor(async () => {
      const x = await alertsOf('G-S2');
      return x.length ? x : null;
    }, 'the breach from stored readings');
    expect(a).toMatchObject({ type: 'exclusion_breach', started_at: new Date(stored[1]!.ts), late: true });
    // received within seconds of its device time: not late
    const fresh = fixesAt(Date.now() - 4 * 60_000, [IN, IN, IN, IN, OUT, OUT, OUT]);
    await db.pool.query(`UPDATE alerts SET status = 'resolved' WHERE subject_id = 'G-S2'`);
    await pub.publishAsync('tags/v1/G-D2/gps', JSON.stringify(fresh), { qos: 1 });
    const both = await waitFor(async () => {
      const x = await alertsOf('G-S2');
      return x.length === 2 ? x : null;
    }, 'the breach from fresh readings');
    expect(both[1]).toMatchObject({ started_at: new Date(fresh[0]!.ts), late: false });
  });

  it('a crash and retry, or a second evaluation of the same readings, never raises an alert twice', async () => {
    const deps = { pool: svc.rt.pool, logger: svc.rt.logger, metrics: svc.rt.metrics };
    const before = await alertsOf('G-S1');
    // replay everything of the last two hours as if every fix had arrived late
    const r = await evaluateDeviceGeofence(deps, 'G-D1', Date.now() - 2 * 3600_000);
    expect(r.replayed).toBe(true);
    expect(r.fixes).toBeGreaterThanOrEqual(18);
    expect(r.raised).toEqual([]);
    const again = await evaluateDeviceGeofence(deps, 'G-D1', null);
    expect(again.raised).toEqual([]);
    expect(await alertsOf('G-S1')).toEqual(before);
  });

  it('raises a curfew_breach when the subject is out during the curfew window', async () => {
    await setUp('C-S1', 'C-D1');
    const local = DateTime.now().setZone('Europe/London');
    const schedule = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: local.minus({ hours: 1 }).toFormat('HH:mm'), end: local.plus({ hours: 1 }).toFormat('HH:mm') }];
    const home = (await api('POST', '/v1/subjects/C-S1/zones', circle({ kind: 'inclusion', name: 'home', radius_m: 100, schedule }))).json();
    const t0 = Date.now() - 5 * 60_000;
    const fixes = fixesAt(t0, [{ lat: 52.95, lon: -1.15 }, { lat: 52.95, lon: -1.15 }, OUT, OUT, OUT, OUT]);
    await pub.publishAsync('tags/v1/C-D1/gps', JSON.stringify(fixes), { qos: 1 });
    const [a] = await waitFor(async () => {
      const x = await alertsOf('C-S1');
      return x.length ? x : null;
    }, 'the curfew breach');
    expect(a).toMatchObject({ type: 'curfew_breach', zone_id: home.id, started_at: new Date(fixes[2]!.ts), late: false });
  });

  it('re-evaluates a past period with the current zones without raising alerts', async () => {
    const before = (await db.pool.query(`SELECT count(*)::int n FROM alerts`)).rows[0].n;
    const r = await api('POST', '/v1/subjects/G-S1/reevaluate', { from: new Date(Date.now() - 3 * 3600_000).toISOString(), to: new Date().toISOString() }, ['offender_manager', 'om-1']);
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.breaches.map((b: { type: string; ended_at: string | null }) => [b.type, b.ended_at !== null])).toEqual([
      ['exclusion_breach', true],
      ['exclusion_breach', true],
      ['exclusion_breach', true],
    ]);
    expect((await db.pool.query(`SELECT count(*)::int n FROM alerts`)).rows[0].n).toBe(before);
    expect((await api('POST', '/v1/subjects/G-S1/reevaluate', { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' })).statusCode).toBe(400);
  });
});

import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { DateTime } from 'luxon';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, token, waitFor, type TestService } from '../support/env.js';
import { openStream, startReceiver } from '../support/sse.js';
import { tickHealth } from '../../health/health.job.js';
import { ALERT_TYPES } from '../../alerts/rules.js';

/** Every alert type of contract §5, each caused through MQTT, seen on the stream and by a webhook. */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;
let stream: Awaited<ReturnType<typeof openStream>>;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const SECRET = 'types-webhook-secret-0123456789';
const MIN = 60_000;
const HOME = [-1.15, 52.95];
const AWAY = { lat: 52.9589932, lon: -1.15 };
const AT_HOME = { lat: 52.95, lon: -1.15 };

async function api(method: 'GET' | 'POST', url: string, payload?: object, who: Parameters<typeof authHeader> = ['admin']) {
  const r = await svc.app.inject({ method, url, headers: await authHeader(...who), ...(payload ? { payload } : {}) });
  expect(r.statusCode, `${method} ${url}: ${r.body}`).toBeLessThan(300);
  return r.json();
}

/** A subject with its own device fitted a day ago (one subject per alert type keeps them apart). */
async function subject(type: string, kind = 'combined') {
  const id = `T-${type}`.replace(/_/g, '-');
  await api('POST', '/v1/devices', { id: `${id}-D`, kind });
  await api('POST', '/v1/subjects', { id, display_name: `Person ${type}`, cohort: 'flex', rag: 'red', offender_manager_ids: ['om-1'] });
  await api('POST', `/v1/subjects/${id}/assignments`, { device_id: `${id}-D`, start: new Date(Date.now() - 86400_000).toISOString() });
  return { subjectId: id, device: `${id}-D` };
}

const send = (device: string, stream: string, body: unknown) => pub.publishAsync(`tags/v1/${device}/${stream}`, JSON.stringify(body), { qos: 1 });
const iso = (ms: number) => new Date(ms).toISOString();
const fixes = (from: number, points: Array<{ lat: number; lon: number }>) => points.map((p, i) => ({ ts: iso(from + i * 30_000), ...p, accuracy_m: 10 }));
const alcohol = (from: number, tacs: number[], stepMin = 30, over: (i: number) => object = () => ({})) =>
  tacs.map((tac, i) => ({ ts: iso(from + i * stepMin * MIN), tac, temp_c: 31, ir: 1.1, ...over(i) }));

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, WEBHOOK_ALLOW_PRIVATE: 'true' }), { ingest: true, worker: true, feed: true });
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'types-publisher' });
  receiver = await startReceiver(SECRET);
  await api('POST', '/v1/webhooks', { url: receiver.url, secret: SECRET }, ['offender_manager', 'om-1']);
  stream = await openStream(`http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}/v1/alerts/stream`, await token('offender_manager', 'om-1'));
});

afterAll(async () => {
  await stream?.close();
  await pub?.endAsync();
  await svc?.stop();
  await receiver?.close();
  broker?.stop();
  await db?.drop();
});

describe('every alert type end to end', () => {
  it('is raised from telemetry and delivered to the stream and the webhook', async () => {
    const now = Date.now();
    const local = DateTime.now().setZone('Europe/London');
    const window = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: local.minus({ hours: 2 }).toFormat('HH:mm'), end: local.plus({ hours: 1 }).toFormat('HH:mm') };
    const expected = new Map<string, string>(); // type -> subject

    const ex = await subject('exclusion_breach');
    await api('POST', `/v1/subjects/${ex.subjectId}/zones`, { type: 'Feature', geometry: { type: 'Point', coordinates: HOME }, properties: { kind: 'exclusion', radius_m: 300 } });
    await send(ex.device, 'gps', fixes(now - 5 * MIN, [AWAY, AT_HOME, AT_HOME, AT_HOME, AWAY]));
    expected.set('exclusion_breach', ex.subjectId);

    const cu = await subject('curfew_breach');
    await api('POST', `/v1/subjects/${cu.subjectId}/zones`, { type: 'Feature', geometry: { type: 'Point', coordinates: HOME }, properties: { kind: 'inclusion', radius_m: 100, schedule: [window] } });
    await send(cu.device, 'gps', fixes(now - 5 * MIN, [AT_HOME, AWAY, AWAY, AWAY, AWAY]));
    expected.set('curfew_breach', cu.subjectId);

    const nf = await subject('curfew_no_fix');
    await api('POST', `/v1/subjects/${nf.subjectId}/zones`, { type: 'Feature', geometry: { type: 'Point', coordinates: HOME }, properties: { kind: 'inclusion', radius_m: 100, schedule: [window] } });
    await send(nf.device, 'gps', [{ ts: iso(now - 40 * MIN), ...AT_HOME, accuracy_m: 10 }, { ts: iso(now - 1 * MIN), ...AT_HOME, accuracy_m: 10 }]);
    expected.set('curfew_no_fix', nf.subjectId);

    const dr = await subject('drinking_event', 'alcohol');
    await send(dr.device, 'alcohol', alcohol(now - 4 * 3600_000, [0, 0, 0.03, 0.06, 0.08, 0.05, 0.01, 0, 0]));
    expected.set('drinking_event', dr.subjectId);

    const it_ = await subject('alcohol_interference', 'alcohol');
    await send(it_.device, 'alcohol', alcohol(now - 3 * 3600_000, [0, 0, 0.05, 0, 0, 0]));
    expected.set('alcohol_interference', it_.subjectId);

    const tp = await subject('alcohol_tamper', 'alcohol');
    // a day of normal wear (the baseline), then IR collapsed for 3 hours
    await send(tp.device, 'alcohol', alcohol(now - 24 * 3600_000, new Array(46).fill(0), 30, (i) => (i >= 40 ? { ir: 0.2 } : {})));
    expected.set('alcohol_tamper', tp.subjectId);

    for (const [type, body] of [
      ['strap_tamper', { strap: 'open', event: 'strap_tamper' }],
      ['case_tamper', { case: 'open', event: 'case_tamper' }],
      ['low_battery', { battery_pct: 12, event: 'low_battery' }],
    ] as const) {
      const s = await subject(type);
      await send(s.device, 'status', { ts: iso(now - MIN), battery_pct: 60, ...body });
      expected.set(type, s.subjectId);
    }

    const ns = await subject('no_signal');
    await send(ns.device, 'status', { ts: iso(now - 2 * MIN), battery_pct: 90 });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM device_health WHERE device_id = $1`, [ns.device])).rowCount, 'no_signal device health');
    // receipt 20 minutes ago (as if), then a burst: the gap is found from receipt times
    await db.pool.query(`UPDATE device_health SET last_received_at = now() - interval '20 minutes' WHERE device_id = $1`, [ns.device]);
    await send(ns.device, 'status', [{ ts: iso(now - MIN), battery_pct: 89 }]);
    expected.set('no_signal', ns.subjectId);

    const ng = await subject('no_gps_fix', 'gps');
    await send(ng.device, 'status', { ts: iso(now - MIN), battery_pct: 70 });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM device_health WHERE device_id = $1 AND last_status_received_at IS NOT NULL`, [ng.device])).rowCount, 'no_gps_fix status');
    // the clock check (every minute in the worker) runs now: status for a day of fitting, never a fix
    await tickHealth({ pool: svc.rt.pool, logger: svc.rt.logger, metrics: svc.rt.metrics }, Date.now(), 15 * MIN);
    expected.set('no_gps_fix', ng.subjectId);

    // crime_proximity: fixes at a crime scene over MQTT, a batch matched by the worker, a confirmed review
    const cp = await subject('crime_proximity', 'gps');
    const start = Math.floor(now / MIN) * MIN - 120 * MIN;
    await send(cp.device, 'gps', Array.from({ length: 24 }, (_, i) => ({ ts: iso(start + i * 5 * MIN), ...AT_HOME, accuracy_m: 10 })));
    await waitFor(async () => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id = $1`, [cp.device])).rows[0].n === 24, 'crime trail stored');
    const compact = (ms: number) => iso(ms).replace(/[-:T]/g, '').slice(0, 14);
    const csv = `NOTTINGHAMSHIRE,BIAD,,NOT20261201,TYPES/1,${compact(start + 30 * MIN)},${compact(start + 60 * MIN)},,,${AT_HOME.lat},${AT_HOME.lon},WGS84,rear door\n`;
    const up = await svc.app.inject({ method: 'POST', url: '/v1/crime-batches', headers: { ...(await authHeader('crime_analyst')), 'content-type': 'text/csv' }, payload: csv });
    expect(up.statusCode, up.body).toBe(201);
    const crimeId = await waitFor(async () => {
      const b = await api('GET', `/v1/crime-batches/${up.json().id}`, undefined, ['crime_analyst']);
      return b.runs[0].status === 'done' ? b.crime_ids[0].id : null;
    }, 'crime run done');
    const match = (await api('GET', `/v1/crimes/${crimeId}`, undefined, ['crime_analyst'])).subjects[0];
    await api('POST', `/v1/crime-matches/${match.match_id}/review`, { decision: 'confirmed', note: 'on CCTV' }, ['crime_analyst']);
    expected.set('crime_proximity', cp.subjectId);

    expect([...expected.keys()].sort()).toEqual([...ALERT_TYPES].sort());
    for (const [type, subjectId] of expected) {
      const alert = await waitFor(async () => (await db.pool.query(`SELECT id FROM alerts WHERE type = $1 AND subject_id = $2`, [type, subjectId])).rows[0], `${type} raised`, 30_000);
      await waitFor(() => stream.events.some((e) => e.data.alert.id === alert.id && e.data.action === 'raised'), `${type} on the stream`);
      const hook = await waitFor(() => receiver.received.find((r) => r.json.alert.id === alert.id && r.json.event === 'raised'), `${type} at the webhook`);
      expect(hook.validSignature).toBe(true);
      // acknowledged and resolved by the manager (or already resolved by itself), and both seen downstream
      const { status } = (await db.pool.query(`SELECT status FROM alerts WHERE id = $1`, [alert.id])).rows[0];
      const actions = status === 'resolved' ? ['auto_resolved'] : ['acknowledged', 'resolved'];
      if (status !== 'resolved') {
        await api('POST', `/v1/alerts/${alert.id}/acknowledge`, { note: `seen ${type}` }, ['offender_manager', 'om-1']);
        await api('POST', `/v1/alerts/${alert.id}/resolve`, { note: `dealt with ${type}` }, ['offender_manager', 'om-1']);
      }
      for (const action of actions) {
        await waitFor(() => stream.events.some((e) => e.data.alert.id === alert.id && e.data.action === action), `${type} ${action} on the stream`);
        await waitFor(() => receiver.received.some((r) => r.json.alert.id === alert.id && r.json.event === action), `${type} ${action} at the webhook`);
      }
      const detail = await api('GET', `/v1/alerts/${alert.id}`, undefined, ['offender_manager', 'om-1']);
      expect(detail.status).toBe('resolved');
      expect(detail.history.map((h: { action: string }) => h.action), JSON.stringify([type, detail.history])).toEqual(['raised', ...actions]);
    }
  }, 120_000);
});

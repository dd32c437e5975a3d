import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { Queue } from 'bullmq';
import { authHeader, createTestDatabase, heldTransaction, startTestBroker, startTestService, testConfig, token, waitFor, type TestService } from '../support/env.js';
import { openStream, startReceiver } from '../support/sse.js';
import { tickHealth } from '../../health/health.job.js';
import { raiseAlert, type NewAlert } from '../../alerts/alerts.repo.js';
import { withTransaction } from '../../platform/db.js';
import { requeuePending, WEBHOOK_QUEUE } from '../../alerts/webhooks.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;
let base: string;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const SECRET = 'a-webhook-secret-of-32-characters';

async function api(method: 'GET' | 'POST', url: string, payload?: object, who: Parameters<typeof authHeader> = ['admin']) {
  return svc.app.inject({ method, url, headers: await authHeader(...who), ...(payload ? { payload } : {}) });
}

async function fit(subject: string, device: string, kind = 'combined', managers = ['om-1']) {
  expect((await api('POST', '/v1/devices', { id: device, kind })).statusCode).toBe(201);
  expect((await api('POST', '/v1/subjects', { id: subject, display_name: `Person ${subject}`, cohort: 'free', rag: 'red', offender_manager_ids: managers })).statusCode).toBe(201);
  expect((await api('POST', `/v1/subjects/${subject}/assignments`, { device_id: device, start: new Date(Date.now() - 86400_000).toISOString() })).statusCode).toBe(201);
}

const status = (device: string, body: object) => pub.publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts: new Date().toISOString(), battery_pct: 80, ...body }), { qos: 1 });

async function alertOf(subject: string, type: string) {
  return waitFor(async () => (await db.pool.query(`SELECT * FROM alerts WHERE subject_id = $1 AND type = $2`, [subject, type])).rows[0], `${type} of ${subject}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, WEBHOOK_ALLOW_PRIVATE: 'true' }), { ingest: true, worker: true, feed: true });
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  pub = await mqtt.connectAsync(broker.url, { clientId: 'alerts-test-publisher' });
  receiver = await startReceiver(SECRET);
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  await receiver?.close();
  broker?.stop();
  await db?.drop();
});

describe('alerts from MQTT to the stream and webhooks', () => {
  it('delivers a strap tamper to the manager’s stream and signed webhook, not to another manager', async () => {
    await fit('H-S1', 'H-D1');
    const hook = await api('POST', '/v1/webhooks', { url: receiver.url, secret: SECRET }, ['offender_manager', 'om-1']);
    expect(hook.statusCode).toBe(201);
    const dead = await api('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/dead', secret: SECRET }, ['offender_manager', 'om-1']);
    expect(dead.statusCode).toBe(201);
    const mine = await openStream(`${base}/v1/alerts/stream`, await token('offender_manager', 'om-1'));
    const other = await openStream(`${base}/v1/alerts/stream`, await token('offender_manager', 'om-2'));
    expect(mine.status).toBe(200);
    await status('H-D1', { strap: 'open', event: 'strap_tamper' });
    const alert = await alertOf('H-S1', 'strap_tamper');
    expect(alert).toMatchObject({ severity: 'high', status: 'open', device_id: 'H-D1', late: false });
    await waitFor(() => mine.events.some((e) => e.data.alert.id === alert.id && e.data.action === 'raised'), 'the stream event');
    const got = await waitFor(() => receiver.received.find((r) => r.json.alert.id === alert.id), 'the webhook');
    expect(got.validSignature).toBe(true);
    expect(got.json.event).toBe('raised');
    expect(got.delivery).toBe(got.json.delivery_id);
    // the dead endpoint's attempts are logged and did not hold up the healthy one
    await waitFor(async () => (await db.pool.query(`SELECT count(*)::int n FROM webhook_attempts t JOIN webhook_deliveries d ON d.id = t.delivery_id WHERE d.webhook_id = $1 AND t.error IS NOT NULL`, [dead.json().id])).rows[0].n >= 1, 'a failed attempt logged');
    expect(other.events).toEqual([]);
    // the attempt's row is written before its metric is counted: wait for the count
    const counted = async (outcome: string) => (await svc.rt.metrics.deliveryAttempts.get()).values.find((v) => v.labels.channel === 'webhook' && v.labels.outcome === outcome)?.value ?? 0;
    await waitFor(async () => (await counted('delivered')) >= 1, 'a delivered attempt counted');
    await waitFor(async () => (await counted('retry')) >= 1, 'a retried attempt counted');
    await mine.close();
    await other.close();
  });

  it('acknowledges once (a second time is 409 with no second history entry), and never someone else’s alert', async () => {
    const alert = await alertOf('H-S1', 'strap_tamper');
    expect((await api('POST', `/v1/alerts/${alert.id}/acknowledge`, { note: 'x' }, ['offender_manager', 'om-2'])).statusCode).toBe(404);
    const ack = await api('POST', `/v1/alerts/${alert.id}/acknowledge`, { note: 'calling him' }, ['offender_manager', 'om-1']);
    expect(ack.statusCode).toBe(200);
    expect(ack.json()).toMatchObject({ status: 'acknowledged', acknowledged_by: 'om-1' });
    expect((await api('POST', `/v1/alerts/${alert.id}/acknowledge`, {}, ['offender_manager', 'om-1'])).statusCode).toBe(409);
    const res = await api('POST', `/v1/alerts/${alert.id}/resolve`, { note: 'strap refitted', false_alarm: false }, ['offender_manager', 'om-1']);
    expect(res.json()).toMatchObject({ status: 'resolved', resolved_by: 'om-1' });
    expect((await api('POST', `/v1/alerts/${alert.id}/resolve`, {}, ['offender_manager', 'om-1'])).statusCode).toBe(409);
    const detail = await api('GET', `/v1/alerts/${alert.id}`, undefined, ['offender_manager', 'om-1']);
    expect(detail.json().history.map((h: { action: string; actor: string; note: string | null }) => [h.action, h.actor, h.note])).toEqual([
      ['raised', 'system', null],
      ['acknowledged', 'om-1', 'calling him'],
      ['resolved', 'om-1', 'strap refitted'],
    ]);
    const list = await api('GET', '/v1/alerts?status=resolved', undefined, ['offender_manager', 'om-1']);
    expect(list.json().items.map((a: { id: string }) => a.id)).toContain(alert.id);
    expect((await api('GET', '/v1/alerts', undefined, ['offender_manager', 'om-2'])).json().items).toEqual([]);
  });

  it('resumes the stream from Last-Event-ID without losing what was raised meanwhile', async () => {
    await fit('H-S2', 'H-D2');
    const s1 = await openStream(`${base}/v1/alerts/stream`, await token('supervisor', 'sup-1'));
    await status('H-D2', { case: 'open' });
    const first = await alertOf('H-S2', 'case_tamper');
    await waitFor(() => s1.events.find((e) => e.data.alert.id === first.id), 'first event');
    const lastId = s1.events[s1.events.length - 1]!.id;
    await s1.close();
    await status('H-D2', { battery_pct: 9 }); // raised while nobody listens
    const low = await alertOf('H-S2', 'low_battery');
    const s2 = await openStream(`${base}/v1/alerts/stream`, await token('supervisor', 'sup-1'), lastId);
    await waitFor(() => s2.events.find((e) => e.data.alert.id === low.id), 'the missed event after resuming');
    const firstFeedId = s1.events.find((e) => e.data.alert.id === first.id)!.data.id;
    expect(s2.events.some((e) => e.data.id === firstFeedId)).toBe(false); // nothing before the resume point again
    await s2.close();
  });

  it('does not lose an event committed after a later one, live or on resuming', async () => {
    await fit('H-S9', 'H-D9');
    const s1 = await openStream(`${base}/v1/alerts/stream`, await token('supervisor', 'sup-1'));
    const raise = (a: Pick<NewAlert, 'type'>) => withTransaction(db.pool, (tx) => raiseAlert(tx, { subjectId: 'H-S9', deviceId: 'H-D9', zoneId: null, startedAt: new Date(), late: false, evidence: [], ...a }));
    // the slow transaction takes the lower feed id and commits last
    const slow = await heldTransaction(db.pool);
    try {
      const a = await raiseAlert(slow.tx, { type: 'case_tamper', subjectId: 'H-S9', deviceId: 'H-D9', zoneId: null, startedAt: new Date(), late: false, evidence: [] });
      expect(a.outcome).toBe('raised');
      await raise({ type: 'low_battery' });
      const later = await waitFor(() => s1.events.find((e) => e.data.alert.subject_id === 'H-S9' && e.data.alert.type === 'low_battery'), 'the later event');
      expect(BigInt(later.id)).toBeLessThan(BigInt(later.data.id)); // the resume point stays before the gap
      await s1.close();
      await slow.commit();
      const early = (a as { alert: { id: string } }).alert.id;
      // resuming from the last id seen delivers the event that committed late
      const s2 = await openStream(`${base}/v1/alerts/stream`, await token('supervisor', 'sup-1'), later.id);
      await waitFor(() => s2.events.find((e) => e.data.alert.id === early), 'the late event after resuming');
      await s2.close();
    } finally {
      await slow.commit();
    }
    // and live: a stream open while it happens sees both
    const s3 = await openStream(`${base}/v1/alerts/stream`, await token('supervisor', 'sup-1'));
    const slow2 = await heldTransaction(db.pool);
    try {
      const a = await raiseAlert(slow2.tx, { type: 'strap_tamper', subjectId: 'H-S9', deviceId: 'H-D9', zoneId: null, startedAt: new Date(), late: false, evidence: [] });
      const b = await raise({ type: 'no_signal' });
      await waitFor(() => s3.events.find((e) => e.data.alert.id === (b as { alert: { id: string } }).alert.id), 'the later event, live');
      await slow2.commit();
      await waitFor(() => s3.events.find((e) => e.data.alert.id === (a as { alert: { id: string } }).alert.id), 'the earlier event, live, after its commit');
    } finally {
      await slow2.commit();
      await s3.close();
    }
  });

  it('resolves low battery by itself when charged above 30 %, saying so', async () => {
    await status('H-D2', { battery_pct: 35, charging: true });
    const resolved = await waitFor(async () => (await db.pool.query(`SELECT status, resolved_by FROM alerts WHERE subject_id = 'H-S2' AND type = 'low_battery' AND status = 'resolved'`)).rows[0], 'auto resolution');
    expect(resolved).toEqual({ status: 'resolved', resolved_by: 'system' });
    const h = await db.pool.query(`SELECT e.note FROM alert_events e JOIN alerts a ON a.id = e.alert_id WHERE a.subject_id = 'H-S2' AND a.type = 'low_battery' AND e.action = 'auto_resolved'`);
    expect(h.rows).toEqual([{ note: 'battery charged to 35 %' }]);
  });

  it('raises no_signal against the server clock, resolves it when data returns, and finds a gap hidden by a burst', async () => {
    const deps = { pool: svc.rt.pool, logger: svc.rt.logger, metrics: svc.rt.metrics };
    const now = Date.now();
    const r = await tickHealth(deps, now + 16 * 60_000, 15 * 60_000);
    expect(r.raised.filter((a) => a.subject_id === 'H-S2').map((a) => a.type)).toEqual(['no_signal']);
    expect((await tickHealth(deps, now + 17 * 60_000, 15 * 60_000)).raised.filter((a) => a.subject_id === 'H-S2')).toEqual([]);
    await status('H-D2', { battery_pct: 70 });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM alerts WHERE subject_id = 'H-S2' AND type = 'no_signal' AND status = 'resolved'`)).rowCount, 'no_signal resolved');
    // the clock check missed a 20-minute silence; the next burst reveals it (raised late, resolved at once)
    await fit('H-S5', 'H-D5');
    await status('H-D5', { battery_pct: 90 });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM device_health WHERE device_id = 'H-D5'`)).rowCount, 'H-D5 health');
    await db.pool.query(`UPDATE device_health SET last_received_at = now() - interval '20 minutes', last_ts = now() - interval '20 minutes' WHERE device_id = 'H-D5'`);
    await pub.publishAsync('tags/v1/H-D5/status', JSON.stringify([0, 1, 2].map((i) => ({ ts: new Date(Date.now() - (19 - i) * 60_000).toISOString(), battery_pct: 60 }))), { qos: 1 });
    const gap = await alertOf('H-S5', 'no_signal');
    expect(gap).toMatchObject({ late: true });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM alerts WHERE id = $1 AND status = 'resolved'`, [gap.id])).rowCount, 'gap resolved');
  });

  it('escalates a high alert unacknowledged for 15 minutes to supervisors, once, surviving restarts', async () => {
    await fit('H-S3', 'H-D3');
    await status('H-D3', { strap: 'open' });
    const a = await alertOf('H-S3', 'strap_tamper');
    const deps = { pool: svc.rt.pool, logger: svc.rt.logger, metrics: svc.rt.metrics };
    expect((await tickHealth(deps, Date.now() + 14 * 60_000, 15 * 60_000)).escalated).toEqual([]);
    expect((await tickHealth(deps, Date.now() + 16 * 60_000, 15 * 60_000)).escalated).toEqual([a.id]);
    expect((await tickHealth(deps, Date.now() + 30 * 60_000, 15 * 60_000)).escalated).toEqual([]);
    const ev = await db.pool.query(`SELECT action, audience FROM alert_events WHERE alert_id = $1 AND action = 'escalated'`, [a.id]);
    expect(ev.rows).toEqual([{ action: 'escalated', audience: 'supervisors' }]);
  });

  it('delivers pending webhooks after Redis lost its jobs', async () => {
    receiver.setStatus(503); // the receiver is down for a while: deliveries stay pending
    await fit('H-S4', 'H-D4');
    await status('H-D4', { case: 'open' });
    const a = await alertOf('H-S4', 'case_tamper');
    const q = new Queue(WEBHOOK_QUEUE, { connection: svc.rt.redis, prefix: svc.rt.config.QUEUE_PREFIX });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM webhook_attempts t JOIN webhook_deliveries d ON d.id = t.delivery_id JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1`, [a.id])).rowCount, 'a failed attempt');
    await q.obliterate({ force: true }); // as if Redis restarted empty
    receiver.setStatus(200);
    expect(await requeuePending(svc.rt.pool, q)).toBeGreaterThanOrEqual(1);
    await waitFor(() => receiver.received.find((r) => r.json.alert.id === a.id && r.json.event === 'raised'), 'the delivery after requeue', 20_000);
    await q.close();
  });

  it('refuses webhook URLs that are not http(s) or point at private addresses when not allowed', async () => {
    expect((await api('POST', '/v1/webhooks', { url: 'ftp://example.org/x', secret: SECRET }, ['offender_manager', 'om-1'])).json().detail).toMatch(/http or https/);
    const { urlProblem } = await import('../../alerts/webhooks.js');
    expect(await urlProblem('http://127.0.0.1:8080/x', false)).toMatch(/non-public address/);
    expect(await urlProblem('http://[::1]/x', false)).toMatch(/non-public address/);
    expect(await urlProblem('http://10.1.2.3/x', false)).toMatch(/non-public address/);
    expect(await urlProblem('https://93.184.216.34/x', false)).toBeNull();
  });

  it('reports alert fatigue figures to supervisors', async () => {
    const from = new Date(Date.now() - 86400_000).toISOString();
    const to = new Date(Date.now() + 3600_000).toISOString();
    const r = await api('GET', `/v1/alerts/stats?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, undefined, ['supervisor']);
    expect(r.statusCode).toBe(200);
    const om1 = r.json().managers.find((m: { manager_id: string }) => m.manager_id === 'om-1');
    expect(om1.alerts).toBeGreaterThanOrEqual(5);
    expect(om1.resolved_false_share).toBe(0);
    expect(om1.ack_p50_s).toBeGreaterThanOrEqual(0);
    expect((await api('GET', `/v1/alerts/stats?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, undefined, ['offender_manager', 'om-1'])).statusCode).toBe(403);
    expect((await api('GET', `/v1/alerts/stats?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, undefined, ['admin'])).statusCode).toBe(200);
    // who read which subjects' figures is in the audit log
    const audited = await db.pool.query(`SELECT detail FROM audit_log WHERE action = 'alerts.stats' ORDER BY at DESC LIMIT 1`);
    expect(audited.rows[0].detail.subject_ids).toContain('H-S1');
    expect(audited.rows[0].detail.manager_ids).toContain('om-1');
    // the fleet's figures as gauges in /metrics (last 30 days), which managers cannot read
    const fleet = r.json().fleet;
    const metrics = await api('GET', '/metrics', undefined, ['supervisor']);
    expect(metrics.statusCode).toBe(200);
    const gauge = (name: string, labels = '') => Number(new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ''} (\\S+)$`, 'm').exec(metrics.body)?.[1]);
    expect(gauge('tagwatch_alert_fatigue_ack_seconds', 'quantile="0.5"')).toBe(fleet.ack_p50_s);
    expect(gauge('tagwatch_alert_fatigue_false_alarm_share')).toBe(0);
    expect(gauge('tagwatch_alert_fatigue_alerts_per_person_day')).toBeGreaterThan(0);
    expect(gauge('tagwatch_alert_fatigue_manager_alerts_per_person_day', 'quantile="1"')).toBeGreaterThan(0);
    expect((await api('GET', '/metrics', undefined, ['offender_manager', 'om-1'])).statusCode).toBe(403);
  });

  it('puts no subject, device or user id in any /metrics label', async () => {
    const ids = new Set(
      (
        await db.pool.query<{ id: string }>(
          `SELECT id FROM subjects UNION SELECT id FROM devices UNION SELECT unnest(offender_manager_ids) FROM subjects
           UNION SELECT actor FROM audit_log UNION SELECT owner_id FROM webhooks UNION SELECT actor FROM alert_events WHERE actor <> 'system'`,
        )
      ).rows.map((r) => r.id),
    );
    for (const u of ['om-1', 'om-2', 'sup-1', 'admin-1']) ids.add(u);
    expect(ids.has('H-S1') && ids.has('H-D1') && ids.has('om-1')).toBe(true);
    expect((await db.pool.query(`SELECT count(*)::int n FROM alerts`)).rows[0].n).toBeGreaterThanOrEqual(5); // the fleet raised alerts
    const text = (await api('GET', '/metrics', undefined, ['supervisor'])).body;
    const leaks: string[] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      for (const m of line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) if (ids.has(m[2]!)) leaks.push(`${line.split('{')[0]} ${m[1]}=${m[2]}`);
    }
    expect(leaks).toEqual([]);
  });
});

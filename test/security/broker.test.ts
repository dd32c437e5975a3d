import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestBroker, type TestService } from '../support/env.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: TestBroker;
let svc: TestService;
const passwords: Record<string, string> = {};

const fix = () => JSON.stringify({ ts: new Date().toISOString(), lat: 52.95, lon: -1.15, accuracy_m: 9 });
const stored = async (device: string) => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id = $1`, [device])).rows[0].n as number;

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker({ dynsec: true });
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, ...broker.credentials }), { ingest: true });
  for (const id of ['SEC-1', 'SEC-2']) {
    const r = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: await authHeader('admin'), payload: { id, kind: 'gps' } });
    expect(r.statusCode).toBe(201);
    passwords[id] = r.json().mqtt_password;
  }
});

afterAll(async () => {
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

describe('device identity at the broker (dynamic security)', () => {
  it('lets a device publish under its own topic only: a spoofed publish is refused and nothing is stored', async () => {
    const c = await mqtt.connectAsync(broker.url, { clientId: 'SEC-1', username: 'SEC-1', password: passwords['SEC-1'], protocolVersion: 5 });
    await c.publishAsync('tags/v1/SEC-1/gps', fix(), { qos: 1 });
    await waitFor(async () => (await stored('SEC-1')) === 1, 'its own reading');
    // MQTT 5 tells the client: PUBACK reason 135, Not authorized
    await expect(c.publishAsync('tags/v1/SEC-2/gps', fix(), { qos: 1 })).rejects.toThrow(/Not authorized/);
    await c.endAsync();
    await new Promise((r) => setTimeout(r, 500));
    expect(await stored('SEC-2')).toBe(0);
  });

  it('lets a device subscribe to nothing: it never receives another tag’s telemetry', async () => {
    const spy = await mqtt.connectAsync(broker.url, { clientId: 'SEC-2', username: 'SEC-2', password: passwords['SEC-2'], reconnectPeriod: 0 });
    const got: string[] = [];
    spy.on('message', (t) => got.push(t));
    const granted = await spy.subscribeAsync('tags/v1/#', { qos: 1 }).catch(() => [{ qos: 128 }]);
    expect(granted[0]!.qos).toBe(128); // refused
    const c = await mqtt.connectAsync(broker.url, { clientId: 'SEC-1', username: 'SEC-1', password: passwords['SEC-1'] });
    await c.publishAsync('tags/v1/SEC-1/gps', JSON.stringify({ ts: new Date(Date.now() - 1000).toISOString(), lat: 52.9, lon: -1.1, accuracy_m: 9 }), { qos: 1 });
    await waitFor(async () => (await stored('SEC-1')) === 2, 'the second reading');
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([]);
    await c.endAsync();
    await spy.endAsync();
  });

  it('refuses anonymous clients, wrong passwords, and a device once deactivated', async () => {
    await expect(mqtt.connectAsync(broker.url, { clientId: 'anon', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Connection refused|Bad User/i);
    await expect(mqtt.connectAsync(broker.url, { clientId: 'SEC-2', username: 'SEC-2', password: 'guess', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Bad User/i);
    const off = await svc.app.inject({ method: 'PATCH', url: '/v1/devices/SEC-2', headers: await authHeader('admin'), payload: { active: false } });
    expect(off.statusCode).toBe(200);
    await expect(mqtt.connectAsync(broker.url, { clientId: 'SEC-2', username: 'SEC-2', password: passwords['SEC-2'], reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Bad User/i);
    const on = await svc.app.inject({ method: 'PATCH', url: '/v1/devices/SEC-2', headers: await authHeader('admin'), payload: { active: true } });
    expect(on.statusCode).toBe(200);
    const c = await mqtt.connectAsync(broker.url, { clientId: 'SEC-2', username: 'SEC-2', password: passwords['SEC-2'], reconnectPeriod: 0 });
    await c.endAsync();
  });

  it('registers a device the broker already knows (a restored database): the new password works, the old does not', async () => {
    const { connectBrokerAdmin } = await import('../../registry/dynsec.js');
    const admin = await connectBrokerAdmin(broker.url, broker.credentials.MQTT_ADMIN_USERNAME!, broker.credentials.MQTT_ADMIN_PASSWORD!);
    await admin.provisionDevice('SEC-3', 'an-old-password');
    await admin.close();
    const r = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: await authHeader('admin'), payload: { id: 'SEC-3', kind: 'gps' } });
    expect(r.statusCode).toBe(201);
    const c = await mqtt.connectAsync(broker.url, { clientId: 'SEC-3', username: 'SEC-3', password: r.json().mqtt_password, reconnectPeriod: 0 });
    await c.endAsync();
    await expect(mqtt.connectAsync(broker.url, { clientId: 'SEC-3', username: 'SEC-3', password: 'an-old-password', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Bad User/i);
  });
});

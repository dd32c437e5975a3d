import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestBroker, type TestService } from '../support/env.js';

/**
 * Issue 14 §2 (MQTT): Mosquitto has no clustering, so ingest consumes from several brokers at
 * once (MQTT_URL a comma-separated list, one shared subscription per broker) and a device is
 * provisioned on every broker (dynamic security on each). A tag may publish to either broker,
 * or (retrying after a broker failed) to both: every reading is stored exactly once.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let a: TestBroker;
let b: TestBroker;
let svc: TestService;

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestBroker({ dynsec: true });
  b = await startTestBroker({ dynsec: true, sameAccountsAs: a });
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: `${a.url}, ${b.url}`, ...a.credentials, INGEST_CONNECTIONS: '2' }), { ingest: true, worker: true });
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  a?.stop();
  b?.stop();
  await db?.drop();
});

const statusAt = (ms: number) => ({ ts: new Date(ms).toISOString(), battery_pct: 70 });

describe('ingest from two brokers', () => {
  it('provisions a device on both brokers and stores what it publishes to either (or both) exactly once', async () => {
    const reg = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: await authHeader('admin'), payload: { id: 'MB-D1', kind: 'combined' } });
    expect(reg.statusCode, reg.body).toBe(201);
    const password = reg.json().mqtt_password as string;
    const tagA = await mqtt.connectAsync(a.url, { clientId: 'MB-D1', username: 'MB-D1', password, reconnectPeriod: 0 });
    const tagB = await mqtt.connectAsync(b.url, { clientId: 'MB-D1', username: 'MB-D1', password, reconnectPeriod: 0 });
    const t0 = Date.now() - 3_600_000;
    const publish = (tag: mqtt.MqttClient, from: number, n: number) =>
      tag.publishAsync('tags/v1/MB-D1/status', JSON.stringify(Array.from({ length: n }, (_, i) => statusAt(t0 + (from + i) * 1000))), { qos: 1 });
    await publish(tagA, 0, 50); // readings 0–49 to broker A
    await publish(tagB, 50, 50); // 50–99 to broker B
    // 100–119 to both: a tag that lost A's PUBACK and sent them again to B
    await publish(tagA, 100, 20);
    await publish(tagB, 100, 20);
    for (let i = 0; i < 10; i++) await publish(i % 2 ? tagA : tagB, 120 + i, 1);
    await Promise.all([tagA.endAsync(), tagB.endAsync()]);
    const count = async () => (await db.pool.query<{ n: number; distinct_ts: number }>(`SELECT count(*)::int AS n, count(DISTINCT ts)::int AS distinct_ts FROM readings WHERE device_id = 'MB-D1'`)).rows[0]!;
    await waitFor(async () => (await count()).n >= 130, '130 readings stored', 30_000);
    await new Promise((r) => setTimeout(r, 500)); // nothing more arrives
    expect(await count()).toEqual({ n: 130, distinct_ts: 130 });
    const dup = await db.pool.query(`SELECT count(*)::int AS n FROM readings WHERE device_id = 'MB-D1' AND ts >= $1`, [new Date(t0 + 100_000)]);
    expect(dup.rows[0].n).toBe(30);
  });

  it('admits no unknown client at either broker, and refuses a malformed broker list', async () => {
    // the ingest account is the service's on both; an unknown client is refused on both
    for (const broker of [a, b]) {
      const refused = await mqtt.connectAsync(broker.url, { clientId: 'MB-X', username: 'MB-X', password: 'nope', reconnectPeriod: 0 }).then(
        (c) => c.endAsync().then(() => 'connected'),
        (err: Error) => err.message,
      );
      expect(refused).toMatch(/Not authorized|Bad User Name or Password/);
    }
    expect(() => testConfig({ MQTT_URL: `${a.url},localhost:1883` })).toThrow(/^config: MQTT_URL is malformed/);
  });
});

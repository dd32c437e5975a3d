import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { Redis } from 'ioredis';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { freePort } from '../../scripts/stack/services.js';
import { MASTER_NAME, redisPidFile, startHaRedis, stopHaRedis, waitForMaster, type HaRedisPorts } from '../../scripts/stack/ha-redis.js';

/**
 * Issue 14 §2: the service reaches Redis only through the Sentinels (no REDIS_URL at all), and
 * its BullMQ queues and workers carry on after the master is SIGKILLed and a Sentinel promotes
 * the replica. A master, a replica and three Sentinels of its own, on free ports.
 */

let dir: string;
let ports: HaRedisPorts;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;

async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

async function api(method: 'GET' | 'POST', url: string, payload?: object) {
  return svc.app.inject({ method, url, headers: await authHeader('admin'), ...(payload ? { payload } : {}) });
}

async function tamper(subject: string, device: string) {
  expect((await api('POST', '/v1/devices', { id: device, kind: 'combined' })).statusCode).toBe(201);
  expect((await api('POST', '/v1/subjects', { id: subject, display_name: `Person ${subject}`, cohort: 'free', rag: 'red', offender_manager_ids: ['om-1'] })).statusCode).toBe(201);
  expect((await api('POST', `/v1/subjects/${subject}/assignments`, { device_id: device, start: new Date(Date.now() - 86400_000).toISOString() })).statusCode).toBe(201);
  await pub.publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts: new Date().toISOString(), battery_pct: 80, strap: 'open', event: 'strap_tamper' }), { qos: 1 });
  return waitFor(async () => (await db.pool.query(`SELECT id FROM alerts WHERE subject_id = $1 AND type = 'strap_tamper'`, [subject])).rows[0], `strap_tamper of ${subject}`, 90_000);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tagwatch-sentinel-'));
  const p = await distinctPorts(5);
  ports = { servers: p.slice(0, 2), sentinels: p.slice(2) };
  await startHaRedis(dir, ports);
  db = await createTestDatabase();
  broker = await startTestBroker();
  const sentinels = ports.sentinels.map((s) => `127.0.0.1:${s}`).join(',');
  // REDIS_URL '' is unset: the stack's Redis is out of reach of this service
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, REDIS_URL: '', REDIS_SENTINELS: sentinels, REDIS_MASTER_NAME: MASTER_NAME }), { ingest: true, worker: true });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'sentinel-test-publisher' });
}, 120_000);

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
  if (ports) await stopHaRedis(dir, ports);
  rmSync(dir, { recursive: true, force: true });
});

describe('Redis through Sentinels', () => {
  it('queues and evaluates through the master the Sentinels name, and carries on after a failover', async () => {
    expect(svc.rt.config.REDIS_URL).toBeUndefined();
    await tamper('RS-S1', 'RS-D1');
    const first = await waitForMaster(ports, 10_000);
    // the queues live on the Sentinels' master
    const direct = new Redis({ host: '127.0.0.1', port: first, lazyConnect: true });
    await direct.connect();
    expect((await direct.keys(`${svc.rt.config.QUEUE_PREFIX}:*`)).length).toBeGreaterThan(0);
    direct.disconnect();

    const t0 = Date.now();
    process.kill(Number(readFileSync(redisPidFile(dir, first), 'utf8').trim()), 'SIGKILL');
    const promoted = await waitForMaster(ports, 30_000);
    expect(promoted).not.toBe(first);
    // a reading after the failover is queued, evaluated and alerted through the new master
    await tamper('RS-S2', 'RS-D2');
    const recovery = Date.now() - t0;
    const ready = await waitFor(async () => {
      const r = await svc.app.inject({ method: 'GET', url: '/readyz' });
      return r.json().checks.redis === true ? r : null;
    }, 'redis ready again', 20_000);
    expect(ready.statusCode).toBe(200);
    console.log(`Redis master SIGKILLed: promoted ${first} -> ${promoted}; alert through the new master ${recovery} ms after the kill`);
  }, 180_000);
});

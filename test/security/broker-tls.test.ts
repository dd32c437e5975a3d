import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import mqtt from 'mqtt';
import { authHeader, createTestDatabase, stack, startTestBroker, startTestService, testConfig, waitFor, type TestBroker, type TestService } from '../support/env.js';
import { runSimulation } from '../../sim/simulate.js';

/**
 * Finding 14 of issue 9: devices' passwords must not cross the network in clear. The broker
 * also listens with TLS (a CA and server certificate made by `stack:up` / the test broker);
 * devices publish over mqtts://, ingest and the broker admin connect over it too.
 */

describe('MQTT over TLS in the local stack', () => {
  it('stack:up writes MQTTS_URL and MQTT_CA_FILE to .stack/env, keeps its keys 0600, and the TLS listener verifies against that CA', async () => {
    const s = stack();
    expect(s.MQTTS_URL).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const dir = dirname(s.MQTT_CA_FILE);
    for (const key of ['ca.key', 'server.key']) expect({ key, mode: (statSync(join(dir, key)).mode & 0o777).toString(8) }).toEqual({ key, mode: '600' });
    const envFile = readFileSync(join(s.STACK_DIR, 'env'), 'utf8');
    expect(envFile).toContain(`MQTTS_URL=${s.MQTTS_URL}\n`);
    expect(envFile).toContain(`MQTT_CA_FILE=${s.MQTT_CA_FILE}\n`);
    const c = await mqtt.connectAsync(s.MQTTS_URL, { username: s.MQTT_USERNAME, password: s.MQTT_PASSWORD, ca: readFileSync(s.MQTT_CA_FILE), reconnectPeriod: 0, clientId: `tls-chk-${Date.now()}` });
    expect(c.connected).toBe(true);
    await c.endAsync();
  });
});

describe('devices and ingest over TLS', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let broker: TestBroker;
  let svc: TestService;
  let ca: Buffer;
  let simDir: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    broker = await startTestBroker({ dynsec: true, tls: true });
    ca = readFileSync(broker.tls!.caFile);
    // the service (ingest and broker admin) connects over TLS only
    svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.tls!.url, MQTT_CA_FILE: broker.tls!.caFile, ...broker.credentials }), { ingest: true });
    simDir = mkdtempSync(join(tmpdir(), 'tagwatch-sim-tls-'));
  });
  afterAll(async () => {
    await svc?.stop();
    broker?.stop();
    await db?.drop();
    if (simDir) rmSync(simDir, { recursive: true, force: true });
  });

  const stored = async (device: string) => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id = $1`, [device])).rows[0].n as number;

  it('a device registered over the API publishes over mqtts:// and ingest, consuming over TLS, stores the reading', async () => {
    const r = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: await authHeader('admin'), payload: { id: 'TLS-1', kind: 'gps' } });
    expect(r.statusCode).toBe(201);
    const c = await mqtt.connectAsync(broker.tls!.url, { clientId: 'TLS-1', username: 'TLS-1', password: r.json().mqtt_password, ca, protocolVersion: 5, reconnectPeriod: 0 });
    await c.publishAsync('tags/v1/TLS-1/gps', JSON.stringify({ ts: new Date().toISOString(), lat: 52.95, lon: -1.15, accuracy_m: 9 }), { qos: 1 });
    await c.endAsync();
    await waitFor(async () => (await stored('TLS-1')) === 1, 'the reading sent over TLS');
    expect(svc.ingest!.checks!.mqtt!()).toBe(true);
  });

  it('a client that does not trust the CA is refused before it sends its password', async () => {
    const err = await mqtt.connectAsync(broker.tls!.url, { clientId: 'TLS-X', username: 'TLS-X', password: 'x', reconnectPeriod: 0, connectTimeout: 5000 }).then(
      async (c) => {
        await c.endAsync();
        return null;
      },
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it('the fleet simulator publishes over TLS with the CA file', async () => {
    await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const lines: string[] = [];
    const sim = await runSimulation({
      devices: 2,
      rate: 60,
      api: `http://127.0.0.1:${port}`,
      mqttUrl: broker.tls!.url,
      caFile: broker.tls!.caFile,
      seed: 3,
      prefix: 'tls-',
      jwtSecret: stack().JWT_SECRET,
      historyH: 0,
      credentialsFile: join(simDir, 'credentials.json'),
      log: (l) => lines.push(l),
      summaryEveryMs: 500,
      tickMs: 200,
    });
    try {
      await waitFor(() => sim.summary().readings.total > 0, 'readings published', 15_000);
    } finally {
      await sim.stop();
    }
    const s = await sim.stop();
    expect(s.errors).toBe(0);
    await waitFor(async () => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id LIKE 'tls-%'`)).rows[0].n >= s.readings.total, 'every simulated reading stored', 20_000);
  });
});

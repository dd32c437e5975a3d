import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { countReadings } from '../../ingest/readings.repo.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

async function registerDevice(id: string, kind = 'combined') {
  const res = await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: await authHeader('admin'), payload: { id, kind } });
  expect(res.statusCode).toBe(201);
  return res.json();
}

async function publish(topic: string, payload: string | Buffer) {
  await pub.publishAsync(topic, payload, { qos: 1 });
}

async function rejections(deviceId?: string) {
  const res = await svc.app.inject({
    method: 'GET',
    url: `/v1/rejections?limit=1000${deviceId ? `&device_id=${deviceId}` : ''}`,
    headers: await authHeader('admin'),
  });
  expect(res.statusCode).toBe(200);
  const ids = (res.json().items as Array<{ id: string }>).map((i) => Number(i.id));
  expect(ids, 'newest first, by number').toEqual([...ids].sort((a, b) => b - a));
  return res.json().items as Array<{ reason: string; topic: string; raw: string; item_index: number | null; device_id: string | null }>;
}

async function storedCount(deviceId: string): Promise<number> {
  const r = await db.pool.query<{ n: string }>(`SELECT count(*) n FROM readings WHERE device_id = $1`, [deviceId]);
  return Number(r.rows[0]!.n);
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'test-publisher' });
  await registerDevice('TAG-001');
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

describe('ingest over MQTT into PostgreSQL', () => {
  it('stores a single gps fix, an alcohol reading and a status reading, keeping unknown fields', async () => {
    const ts = minutesAgo(5);
    await publish('tags/v1/TAG-001/gps', JSON.stringify({ ts, lat: 52.95, lon: -1.15, accuracy_m: 8, sats: 9, vendor_field: 'x' }));
    await publish('tags/v1/TAG-001/alcohol', JSON.stringify({ ts, tac: 0.012, temp_c: 31.5, ir: 1.1 }));
    await publish('tags/v1/TAG-001/status', JSON.stringify({ ts, battery_pct: 80, strap: 'ok', event: 'heartbeat' }));
    await waitFor(async () => (await storedCount('TAG-001')) === 3, '3 readings');
    const r = await db.pool.query(`SELECT stream, lat, lon, accuracy_m, tac, battery_pct, data FROM readings WHERE device_id = 'TAG-001' ORDER BY stream`);
    expect(r.rows).toEqual([
      expect.objectContaining({ stream: 'alcohol', tac: 0.012, lat: null }),
      expect.objectContaining({ stream: 'gps', lat: 52.95, lon: -1.15, accuracy_m: 8, data: { ts, lat: 52.95, lon: -1.15, accuracy_m: 8, sats: 9, vendor_field: 'x' } }),
      expect.objectContaining({ stream: 'status', battery_pct: 80 }),
    ]);
  });

  it('keeps 997 of a batch of 1000 with 3 bad items and rejects each bad item alone, with its reason', async () => {
    await registerDevice('TAG-BATCH');
    const base = Date.now() - 3 * 3600_000;
    const items: unknown[] = Array.from({ length: 1000 }, (_, i) => ({
      ts: new Date(base + i * 10_000).toISOString(),
      lat: 52.9 + i * 1e-5,
      lon: -1.1,
      accuracy_m: 12,
    }));
    items[10] = { ts: new Date(base).toISOString(), lat: 95, lon: -1.1, accuracy_m: 5 }; // out of range
    items[500] = { ts: 'yesterday', lat: 52, lon: -1, accuracy_m: 5 }; // bad ts
    items[999] = { ts: new Date(base + 999 * 10_000).toISOString(), lat: 0, lon: 0, accuracy_m: 5 }; // null island
    await publish('tags/v1/TAG-BATCH/gps', JSON.stringify(items));
    await waitFor(async () => (await storedCount('TAG-BATCH')) === 997, '997 readings');
    const rej = await waitFor(async () => {
      const r = await rejections('TAG-BATCH');
      return r.length === 3 ? r : null;
    }, '3 rejections');
    const byIndex = Object.fromEntries(rej.map((r) => [r.item_index, r.reason]));
    expect(byIndex[10]).toMatch(/^invalid: item 10: gps\.lat: /);
    expect(byIndex[500]).toMatch(/^invalid: item 500: gps\.ts: /);
    expect(byIndex[999]).toMatch(/^null_island: /);
  });

  it('rejects non-JSON, wrong types, out-of-range values, unknown and inactive devices, ts 2 h ahead', async () => {
    await registerDevice('TAG-OFF');
    const off = await svc.app.inject({ method: 'PATCH', url: '/v1/devices/TAG-OFF', headers: await authHeader('admin'), payload: { active: false } });
    expect(off.statusCode).toBe(200);
    const ts = minutesAgo(1);
    // 100 KiB that are not JSON: the rejection keeps the first 64 KiB. (A payload over 256 KiB
    // never reaches ingest: the broker refuses it, see ingest-memory.test.ts.)
    await publish('tags/v1/TAG-001/gps', 'not json {'.padEnd(100 * 1024, 'x'));
    await publish('tags/v1/TAG-001/alcohol', JSON.stringify({ ts, tac: '0.02', temp_c: 30 }));
    await publish('tags/v1/TAG-001/alcohol', JSON.stringify({ ts, tac: 1.5, temp_c: 30 }));
    await publish('tags/v1/NOBODY-1/gps', JSON.stringify({ ts, lat: 52, lon: -1, accuracy_m: 5 }));
    await publish('tags/v1/TAG-OFF/gps', JSON.stringify({ ts, lat: 52, lon: -1, accuracy_m: 5 }));
    await publish('tags/v1/TAG-001/status', JSON.stringify({ ts: new Date(Date.now() + 2 * 3600_000).toISOString(), battery_pct: 50 }));
    await publish('tags/v1/TAG-001/alcohol', JSON.stringify([]));
    const all = await waitFor(async () => {
      const r = await rejections();
      return r.filter((x) => !x.reason.includes('item ')).length >= 7 ? r : null;
    }, '7 message rejections');
    const reasons = all.map((r) => r.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^not_json: /),
        expect.stringMatching(/^invalid: alcohol\.tac: /),
        expect.stringMatching(/^unknown_device: device NOBODY-1 is not registered/),
        expect.stringMatching(/^inactive_device: device TAG-OFF is not active/),
        expect.stringMatching(/^ts_future: /),
        expect.stringMatching(/^bad_batch: /),
      ]),
    );
    expect(reasons.filter((r) => r.startsWith('invalid: alcohol.tac'))).toHaveLength(2);
    const big = all.find((r) => r.reason.startsWith('not_json'))!;
    expect(Buffer.byteLength(big.raw)).toBe(64 * 1024); // raw bytes kept up to 64 KiB
    expect(await storedCount('TAG-OFF')).toBe(0);
    expect(await storedCount('NOBODY-1')).toBe(0);
    // the service kept running and still stores good readings
    await publish('tags/v1/TAG-001/status', JSON.stringify({ ts: minutesAgo(0.5), battery_pct: 77 }));
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM readings WHERE device_id='TAG-001' AND battery_pct = 77`)).rowCount === 1, 'good reading after bad ones');
  });

  it('a reading the database cannot hold (NUL in an extra field) is rejected alone and stalls nothing', async () => {
    await registerDevice('TAG-NUL');
    const ts = minutesAgo(40);
    await Promise.all([
      publish('tags/v1/TAG-NUL/gps', JSON.stringify({ ts, lat: 52.9, lon: -1.1, accuracy_m: 5, note: 'a\u0000b' })),
      publish('tags/v1/TAG-NUL/gps', JSON.stringify({ ts: minutesAgo(39), lat: 52.9, lon: -1.1, accuracy_m: 5 })),
      publish('tags/v1/TAG-NUL/status', JSON.stringify({ ts, battery_pct: 50 })),
    ]);
    await waitFor(async () => (await storedCount('TAG-NUL')) === 2, 'the two storable readings');
    const rej = await waitFor(async () => {
      const r = await rejections('TAG-NUL');
      return r.length ? r : null;
    }, 'the rejection');
    expect(rej.map((r) => r.reason)).toEqual([expect.stringMatching(/^invalid: gps reading at .* cannot be stored/)]);
  });

  it('stores duplicates once, in one batch and across batches, and rejects a different reading under a stored identity', async () => {
    await registerDevice('TAG-DUP');
    const ts = minutesAgo(30);
    const fix = { ts, lat: 52.91, lon: -1.12, accuracy_m: 7 };
    await publish('tags/v1/TAG-DUP/gps', JSON.stringify([fix, fix, fix]));
    await publish('tags/v1/TAG-DUP/gps', JSON.stringify(fix));
    await publish('tags/v1/TAG-DUP/gps', JSON.stringify([fix, { ...fix, ts: minutesAgo(29) }]));
    await publish('tags/v1/TAG-DUP/gps', JSON.stringify({ ...fix, lat: 52.99 }));
    // the messages reach ingest over several connections: the conflict may commit before the third message
    await waitFor(async () => (await rejections('TAG-DUP')).length === 1 && (await storedCount('TAG-DUP')) === 2, 'the conflict rejection and both readings');
    await new Promise((r) => setTimeout(r, 300)); // and nothing more arrives
    expect(await storedCount('TAG-DUP')).toBe(2);
    expect(await rejections('TAG-DUP')).toHaveLength(1);
    const [conflict] = await rejections('TAG-DUP');
    expect(conflict!.reason).toMatch(/^conflict: a different gps reading of TAG-DUP at /);
    const kept = await db.pool.query(`SELECT lat FROM readings WHERE device_id='TAG-DUP' AND ts = $1`, [ts]);
    expect(kept.rows).toEqual([{ lat: 52.91 }]);
  });

  it('stores a shuffled store-and-forward batch in device-time order for readers', async () => {
    await registerDevice('TAG-SF');
    const sub = await svc.app.inject({
      method: 'POST',
      url: '/v1/subjects',
      headers: await authHeader('admin'),
      payload: { id: 'S-SF', display_name: 'Sam Forward', cohort: 'flex', rag: 'amber', offender_manager_ids: ['om-7'] },
    });
    expect(sub.statusCode).toBe(201);
    const start = new Date(Date.now() - 2 * 86400_000);
    const fit = await svc.app.inject({
      method: 'POST',
      url: '/v1/subjects/S-SF/assignments',
      headers: await authHeader('admin'),
      payload: { device_id: 'TAG-SF', start: start.toISOString() },
    });
    expect(fit.statusCode).toBe(201);
    const fixes = Array.from({ length: 300 }, (_, i) => ({
      ts: new Date(start.getTime() + 60_000 + i * 60_000).toISOString(),
      lat: 52.95 + i * 1e-4,
      lon: -1.15,
      accuracy_m: 10 + (i % 5),
      speed_mps: 1.2,
    }));
    const shuffled = [...fixes].sort(() => Math.random() - 0.5);
    await publish('tags/v1/TAG-SF/gps', JSON.stringify(shuffled));
    await waitFor(async () => (await storedCount('TAG-SF')) === 300, '300 readings');
    const res = await svc.app.inject({
      method: 'GET',
      url: `/v1/subjects/S-SF/track?from=${encodeURIComponent(start.toISOString())}&to=${encodeURIComponent(new Date().toISOString())}`,
      headers: await authHeader('offender_manager', 'om-7'),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.type).toBe('FeatureCollection');
    expect(body.features.map((f: { properties: { ts: string } }) => f.properties.ts)).toEqual(fixes.map((f) => new Date(f.ts).toISOString()));
    expect(body.features[0]).toEqual({
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [-1.15, 52.95] },
      properties: { ts: new Date(fixes[0]!.ts).toISOString(), accuracy_m: 10, speed_mps: 1.2 },
    });
    // another manager's caseload does not include S-SF
    const other = await svc.app.inject({
      method: 'GET',
      url: `/v1/subjects/S-SF/track?from=${encodeURIComponent(start.toISOString())}&to=${encodeURIComponent(new Date().toISOString())}`,
      headers: await authHeader('offender_manager', 'om-8'),
    });
    expect(other.statusCode).toBe(404);
    const audited = await db.pool.query(`SELECT actor, action, subject_id FROM audit_log WHERE action = 'track.read'`);
    expect(audited.rows).toEqual([{ actor: 'om-7', action: 'track.read', subject_id: 'S-SF' }]);
  });

  it('signals each device with new readings on the BullMQ queue, in one pending job', async () => {
    const queue = (svc.ingest as unknown as { queue: import('bullmq').Queue }).queue;
    await registerDevice('TAG-Q');
    for (let i = 0; i < 5; i++) {
      await publish('tags/v1/TAG-Q/status', JSON.stringify({ ts: minutesAgo(10 - i), battery_pct: 60 }));
    }
    await waitFor(async () => (await storedCount('TAG-Q')) === 5, '5 readings');
    const jobs = await waitFor(async () => {
      const j = (await queue.getJobs(['waiting'])).filter((x) => x.data.devices.includes('TAG-Q'));
      return j.length ? j : null;
    }, 'a job for TAG-Q');
    expect(jobs).toHaveLength(1);
    expect(await countReadings(db.pool)).toBeGreaterThan(1000);
  });
});

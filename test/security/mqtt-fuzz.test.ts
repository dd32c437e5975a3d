import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { parseMessage } from '../../ingest/telemetry.js';
import { createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestBroker, type TestService } from '../support/env.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: TestBroker;
let svc: TestService;
const DEVICES = ['FZ-1', 'FZ-2', 'FZ-3'];
const BAD = Number(process.env.FUZZ_BAD ?? 10_000);
const GOOD = BAD / 10;

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true });
  await db.pool.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'combined'`, [DEVICES]);
});

afterAll(async () => {
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

/** Payloads that can never be a valid reading: every one must be rejected with a reason. */
const badPayload = fc.oneof(
  fc.string({ maxLength: 200 }).map((s) => `{${s}`), // not JSON
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(b)])), // binary
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }).map((o) => JSON.stringify({ ...o, ts: 42 })), // wrong ts type
  fc.record({ ts: fc.constantFrom('now', '', '2026-13-01T00:00:00Z', '2026-02-30T10:00:00Z'), lat: fc.double(), lon: fc.double(), accuracy_m: fc.double() }).map((o) => JSON.stringify(o)),
  fc.record({ lat: fc.double({ min: 91, max: 1e9, noNaN: true }), lon: fc.double({ noNaN: true }), accuracy_m: fc.double({ min: 1, max: 10, noNaN: true }) }).map((o) => JSON.stringify({ ...o, ts: new Date(Date.now() - 60_000).toISOString() })),
  fc.record({ tac: fc.oneof(fc.double({ min: 1.0001, max: 1e6, noNaN: true }), fc.double({ min: -1e6, max: -0.0001, noNaN: true })), temp_c: fc.constant(30) }).map((o) => JSON.stringify({ ...o, ts: new Date(Date.now() - 60_000).toISOString() })),
  fc.constantFrom('[]', 'null', '42', '"a string"', 'true', '[1,2,3]', '{}'),
);
const badMessage = fc.record({ device: fc.constantFrom(...DEVICES, 'NOPE-1', 'x'), stream: fc.constantFrom('gps', 'alcohol', 'status'), payload: badPayload });

describe('10,000 random malformed MQTT payloads while valid traffic flows', () => {
  it('stores every valid reading, rejects every bad message with a reason, and stays up', async () => {
    const bad = fc.sample(badMessage, { numRuns: BAD, seed: 20261123 });
    const base = Date.now() - 3600_000;
    const good = Array.from({ length: GOOD }, (_, i) => ({
      topic: `tags/v1/${DEVICES[i % 3]}/status`,
      payload: JSON.stringify({ ts: new Date(base + i * 1000).toISOString(), battery_pct: i % 100 }),
    }));
    const pubs: MqttClient[] = await Promise.all([0, 1, 2, 3].map((i) => mqtt.connectAsync(broker.url, { clientId: `fuzz-${i}` })));
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < BAD; i++) {
      const m = bad[i]!;
      const c = pubs[i % pubs.length]!;
      sends.push(c.publishAsync(`tags/v1/${m.device}/${m.stream}`, m.payload, { qos: 1 }));
      if (i % 10 === 0) {
        const g = good[i / 10]!;
        sends.push(c.publishAsync(g.topic, g.payload, { qos: 1 }));
      }
      if (sends.length >= 400) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);
    await Promise.all(pubs.map((c) => c.endAsync()));

    // what the pure parser (unit-tested on its own) decides for each bad message: never a reading,
    // one rejection or more; the pipeline must store exactly those rejections
    let expectedRejections = 0;
    for (const m of bad) {
      const r = parseMessage(`tags/v1/${m.device}/${m.stream}`, Buffer.from(m.payload as string | Uint8Array), Date.now(), 2190);
      expect(r.readings).toEqual([]);
      expect(r.rejections.length).toBeGreaterThanOrEqual(1);
      expectedRejections += r.rejections.length;
    }
    const rejections = await waitFor(async () => {
      const r = await db.pool.query<{ n: number }>(`SELECT count(*)::int n FROM rejections`);
      return r.rows[0]!.n >= expectedRejections ? r.rows[0]!.n : null;
    }, 'every rejection', 60_000, 200).catch(async (e) => { console.log('expected', expectedRejections, (await db.pool.query(`SELECT split_part(reason, ':', 1) r, count(*)::int n FROM rejections GROUP BY 1`)).rows); throw e; });
    expect(rejections).toBe(expectedRejections);
    const stored = await waitFor(async () => {
      const r = await db.pool.query<{ n: number }>(`SELECT count(*)::int n FROM readings`);
      return r.rows[0]!.n >= GOOD ? r.rows[0]!.n : null;
    }, 'every valid reading', 60_000, 200);
    expect(stored).toBe(GOOD);
    const reasons = await db.pool.query<{ reason: string }>(`SELECT DISTINCT split_part(reason, ':', 1) reason FROM rejections ORDER BY 1`);
    expect(reasons.rows.map((r) => r.reason)).toEqual(['bad_batch', 'bad_topic', 'invalid', 'not_json']);
    expect((await db.pool.query(`SELECT count(*)::int n FROM rejections WHERE reason = '' OR reason IS NULL`)).rows[0].n).toBe(0);
    const ready = await svc.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.json().checks).toMatchObject({ database: true, mqtt: true });
  }, 120_000);
});

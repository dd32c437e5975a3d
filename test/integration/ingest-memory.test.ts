import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import mqtt from 'mqtt';
import { ROOT } from '../../scripts/stack.js';
import { MAX_PAYLOAD_BYTES } from '../../ingest/telemetry.js';
import { createTestDatabase, stack, startTestBroker, waitFor } from '../support/env.js';

/**
 * Finding 5 of issue 9: ingest's memory is bounded in bytes, not only in readings. The ingest
 * process runs as a child with a small heap (64 MB) and a small in-flight byte budget; a device
 * sends a few hundred valid messages close to the 256 KiB payload limit (a padding field: unknown
 * fields are kept) while the database is stalled (a lock on `readings`), so nothing commits and
 * everything the broker sends is held. Before the byte budget, ingest took up to
 * INGEST_INFLIGHT (1000) such messages and ran out of heap; the broker then redelivered them to
 * the next process, which died the same way.
 */

const MESSAGES = 300;
const HEAP_MB = 64;

/** A valid GPS fix padded to just under the payload limit. */
function bigFix(i: number, baseMs: number): string {
  const head = { ts: new Date(baseMs + i * 1000).toISOString(), lat: 52.95, lon: -1.15, accuracy_m: 9, padding: '' };
  const room = MAX_PAYLOAD_BYTES - 64 - JSON.stringify(head).length;
  // a different padding per message: nothing shares the string
  head.padding = `${i}:`.padEnd(room, String.fromCharCode(97 + (i % 26)));
  return JSON.stringify(head);
}

describe('ingest memory under large messages', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let broker: Awaited<ReturnType<typeof startTestBroker>>;
  let child: ChildProcess | null = null;
  let exit: { code: number | null; signal: string | null } | null = null;
  let stderr = '';

  beforeAll(async () => {
    db = await createTestDatabase();
    broker = await startTestBroker();
    await db.pool.query(`INSERT INTO devices (id, kind) VALUES ('BIG-1', 'gps')`);
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    broker?.stop();
    await db?.drop();
  });

  it(`stays up with a ${HEAP_MB} MB heap and stores ${MESSAGES} messages of ~256 KiB exactly once`, async () => {
    const s = stack();
    child = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, '--import', 'tsx', join(ROOT, 'app/main.ts'), 'ingest'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        REDIS_URL: s.REDIS_URL,
        MQTT_URL: broker.url,
        JWT_SECRET: s.JWT_SECRET,
        INGEST_INSTANCE: `mem-${Date.now()}`,
        INGEST_CONNECTIONS: '1',
        INGEST_MAX_PENDING_BYTES: String(4 * 1024 * 1024),
        QUEUE_PREFIX: `mem${Date.now()}`,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once('exit', (code, signal) => (exit = { code, signal }));
    await waitFor(() => out.includes('"msg":"ingest subscribed"') || exit, 'ingest subscribed', 60_000);
    expect(exit).toBeNull();

    // stall the database: every write to readings waits for this lock
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE readings IN EXCLUSIVE MODE');

    const pub = await mqtt.connectAsync(broker.url, { clientId: `big-pub-${Date.now()}`, protocolVersion: 5 });
    const base = Date.now() - 3_600_000;
    for (let i = 0; i < MESSAGES; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, MESSAGES - i) }, (_, k) => pub.publishAsync('tags/v1/BIG-1/gps', bigFix(i + k, base), { qos: 1 })));
    }
    await pub.endAsync();
    // all at the broker; give ingest time to take what it will while nothing commits
    await waitFor(() => out.includes('ingest intake paused') || exit, 'intake paused or ingest gone', 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    const whileStalled = exit;
    await locker.query('ROLLBACK');
    await locker.end();
    expect(whileStalled, `ingest died while the database was stalled: ${/FATAL ERROR.*$/m.exec(stderr)?.[0] ?? stderr.slice(-600)}`).toBeNull();

    const count = async () => (await db.pool.query(`SELECT count(*)::int n, count(DISTINCT ts)::int d FROM readings WHERE device_id = 'BIG-1'`)).rows[0] as { n: number; d: number };
    await waitFor(async () => exit || (await count()).n >= MESSAGES, `all ${MESSAGES} readings`, 120_000, 200);
    expect(exit, `ingest died: ${/FATAL ERROR.*$/m.exec(stderr)?.[0] ?? stderr.slice(-600)}`).toBeNull();
    await new Promise((r) => setTimeout(r, 500));
    expect(await count()).toEqual({ n: MESSAGES, d: MESSAGES });
    const rej = await db.pool.query(`SELECT count(*)::int n FROM rejections`);
    expect(rej.rows[0].n).toBe(0);
    // the padding was kept (unknown fields are part of the reading)
    const one = await db.pool.query(`SELECT length(data->>'padding') len FROM readings WHERE device_id = 'BIG-1' LIMIT 1`);
    expect(one.rows[0].len).toBeGreaterThan(250_000);
    expect(exit).toBeNull();
  }, 240_000);
});

describe('packet size limits', () => {
  let broker: Awaited<ReturnType<typeof startTestBroker>>;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(() => broker?.stop());

  it('the broker refuses a payload over 256 KiB from a device and takes one of exactly 256 KiB', async () => {
    const sub = await mqtt.connectAsync(broker.url, { clientId: `lim-sub-${Date.now()}`, protocolVersion: 5 });
    const got: number[] = [];
    sub.on('message', (_t, p) => got.push(p.length));
    await sub.subscribeAsync('tags/v1/#', { qos: 1 });
    const pub = await mqtt.connectAsync(broker.url, { clientId: `lim-pub-${Date.now()}`, protocolVersion: 5, reconnectPeriod: 0 });
    await pub.publishAsync('tags/v1/LIM-1/gps', Buffer.alloc(MAX_PAYLOAD_BYTES, 0x20), { qos: 1 });
    // refused: Mosquitto 2.0 closes the sender's connection (newer ones answer PUBACK 0x97)
    const closed = new Promise<string>((r) => pub.once('close', () => r('refused: connection closed')));
    const over = await Promise.race([
      pub.publishAsync('tags/v1/LIM-1/gps', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20), { qos: 1 }).then(
        () => 'accepted',
        (err: Error) => `refused: ${err.message}`,
      ),
      closed,
    ]);
    expect(over).toMatch(/^refused/);
    await waitFor(() => got.length >= 1, 'the 256 KiB message');
    await new Promise((r) => setTimeout(r, 500));
    expect(got).toEqual([MAX_PAYLOAD_BYTES]);
    await pub.endAsync(true);
    await sub.endAsync();
  });

  it('an ingest session announces its Maximum Packet Size: the broker does not send it larger packets', async () => {
    const { createMqttSession } = await import('../../ingest/mqtt-session.js');
    const got: number[] = [];
    const session = createMqttSession({
      url: broker.url,
      clientId: `lim-ing-${Date.now()}`,
      filter: `$share/lim${Date.now()}/tags/v1/+/+`,
      receiveMaximum: 10,
      maximumPacketSize: 2000,
      keepalive: 30,
      sessionExpiry: 60,
      onMessage: (m) => {
        got.push(m.payload.length);
        m.ack();
      },
      onState: () => undefined,
      onError: () => undefined,
    });
    await session.start();
    const pub = await mqtt.connectAsync(broker.url, { clientId: `lim-pub2-${Date.now()}`, protocolVersion: 5 });
    await pub.publishAsync('tags/v1/LIM-2/status', Buffer.alloc(5000, 0x20), { qos: 1 });
    await pub.publishAsync('tags/v1/LIM-2/status', Buffer.alloc(100, 0x20), { qos: 1 });
    await waitFor(() => got.length >= 1, 'the small message');
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([100]);
    await pub.endAsync();
    await session.stop();
  });
});

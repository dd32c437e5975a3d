import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { createMqttSession, type InboundMessage, type SessionOptions } from '../../ingest/mqtt-session.js';
import { createIngestConsumer } from '../../ingest/consumer.js';
import { createBatcher } from '../../ingest/batcher.js';
import { parseMessage } from '../../ingest/telemetry.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { freePort, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { createTestDatabase, startTestBroker, waitFor } from '../support/env.js';

/**
 * The ingest MQTT sessions (ingest/mqtt-session.ts) and consumer against a real Mosquitto: many
 * messages in flight, PUBACKs only when acknowledged and in receipt order, redelivery of what
 * was not acknowledged, reconnect, keepalive, pause, and intake paused while commits lag.
 */

const uid = () => Math.random().toString(36).slice(2, 8);
/** A share group of its own per test: Mosquitto keeps giving a group's messages to its offline persistent members. */
const groupFilter = (group = uid()) => `$share/${group}/tags/v1/+/+`;

/** A session that records what arrives and leaves acknowledging to the test. */
function recorder(url: string, clientId: string, filter: string, extra: Partial<SessionOptions> = {}) {
  const got: InboundMessage[] = [];
  const states: boolean[] = [];
  const session = createMqttSession({
    url,
    clientId,
    filter,
    receiveMaximum: 500,
    keepalive: 30,
    sessionExpiry: 600,
    onMessage: (m) => got.push(m),
    onState: (up) => states.push(up),
    onError: () => undefined,
    ...extra,
  });
  return { session, got, states, payloads: () => got.map((m) => m.payload.toString()) };
}

async function publish(pub: MqttClient, payloads: string[]): Promise<void> {
  await Promise.all(payloads.map((p, i) => pub.publishAsync(`tags/v1/dev-${i % 7}/status`, p, { qos: 1 })));
}

/** Waits `ms` and returns how many messages arrived meanwhile (to show that none arrive). */
async function settle(r: { got: unknown[] }, ms = 600): Promise<number> {
  const before = r.got.length;
  await new Promise((res) => setTimeout(res, ms));
  return r.got.length - before;
}

describe('MQTT session (mqtt-packet) against Mosquitto', () => {
  let broker: Awaited<ReturnType<typeof startTestBroker>>;
  let pub: MqttClient;

  beforeAll(async () => {
    broker = await startTestBroker();
    pub = await mqtt.connectAsync(broker.url, { clientId: `pub-${uid()}` });
  });
  afterAll(async () => {
    await pub?.endAsync();
    broker?.stop();
  });

  it('keeps up to Receive Maximum messages unacknowledged, and the broker redelivers every one not acknowledged', async () => {
    const id = `s-${uid()}`;
    const filter = groupFilter();
    const a = recorder(broker.url, id, filter, { receiveMaximum: 300 });
    await a.session.start();
    const payloads = Array.from({ length: 400 }, (_, i) => `m${i}`);
    await publish(pub, payloads);
    await waitFor(() => a.got.length === 300, '300 messages in flight on one connection');
    expect(await settle(a)).toBe(0); // the window is full: nothing more until acknowledged
    // acknowledge the first 100 only, then go away without acknowledging the rest
    for (const m of a.got.slice(0, 100)) m.ack();
    await waitFor(() => a.got.length === 400, 'the rest once 100 were acknowledged');
    await new Promise((r) => setTimeout(r, 100)); // the PUBACKs leave on the next turn
    await a.session.stop();

    const b = recorder(broker.url, id, filter);
    await b.session.start();
    await waitFor(() => b.got.length === 300, 'the 300 unacknowledged messages again');
    expect(b.payloads().sort()).toEqual(a.payloads().slice(100).sort());
    for (const m of b.got) m.ack();
    await new Promise((r) => setTimeout(r, 100));
    await b.session.stop();

    const c = recorder(broker.url, id, filter);
    await c.session.start();
    expect(await settle(c)).toBe(0); // all acknowledged: nothing left in the session
    await c.session.stop();
  });

  it('sends PUBACKs in receipt order: a later message acknowledged first waits for the earlier one', async () => {
    const id = `o-${uid()}`;
    const filter = groupFilter();
    const a = recorder(broker.url, id, filter);
    await a.session.start();
    await publish(pub, ['first']);
    await waitFor(() => a.got.length === 1, 'first');
    await publish(pub, ['second', 'third']);
    await waitFor(() => a.got.length === 3, 'second and third');
    a.got[1]!.ack();
    a.got[2]!.ack(); // committed, but "first" is not: their PUBACKs must wait
    await new Promise((r) => setTimeout(r, 200));
    await a.session.stop();

    const b = recorder(broker.url, id, filter);
    await b.session.start();
    await waitFor(() => b.got.length === 3, 'all three redelivered');
    expect(b.payloads()).toEqual(['first', 'second', 'third']);
    b.got[0]!.ack(); // now the earlier one is acknowledged: all three PUBACKs go
    b.got[2]!.ack();
    b.got[1]!.ack();
    await new Promise((r) => setTimeout(r, 200));
    await b.session.stop();

    const c = recorder(broker.url, id, filter);
    await c.session.start();
    expect(await settle(c)).toBe(0);
    await c.session.stop();
  });

  it('stays connected through idle keepalive periods, paused or not, and resumes delivery', async () => {
    const filter = groupFilter();
    const a = recorder(broker.url, `k-${uid()}`, filter, { keepalive: 1 });
    await a.session.start();
    await new Promise((r) => setTimeout(r, 3500)); // Mosquitto drops a silent client after 1.5 keepalives
    a.session.pause();
    await publish(pub, ['while paused']);
    await new Promise((r) => setTimeout(r, 3500));
    expect(a.got.length).toBe(0); // not read while paused: the broker holds it
    a.session.resume();
    await waitFor(() => a.got.length === 1, 'the held message after resume');
    expect(a.states).toEqual([true]); // never lost the connection
    a.got[0]!.ack();
    await a.session.stop();
  });
});

describe('MQTT session: reconnect and a frozen broker', () => {
  let dir: string;
  let port: number;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tagwatch-mqtt-'));
    port = await freePort();
    url = (await startMosquitto(dir, port)).url;
  });
  afterAll(() => {
    stopMosquitto(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reconnects after a broker restart, resumes its session and redelivers what was unacknowledged', async () => {
    const filter = groupFilter();
    const a = recorder(url, `r-${uid()}`, filter);
    await a.session.start();
    const pub1 = await mqtt.connectAsync(url, { clientId: `pub-${uid()}` });
    await publish(pub1, ['before-1', 'before-2']);
    await pub1.endAsync();
    await waitFor(() => a.got.length === 2, 'two messages before the restart');
    a.got[0]!.ack();
    await new Promise((r) => setTimeout(r, 100));
    stopMosquitto(dir); // Mosquitto saves its sessions on shutdown
    await waitFor(() => a.states.at(-1) === false, 'the session noticing the broker is gone');
    a.got[1]!.ack(); // acknowledged while disconnected: void, the broker will redeliver it
    await startMosquitto(dir, port);
    await waitFor(() => a.states.at(-1) === true, 'the session back', 20_000);
    await waitFor(() => a.got.length === 3, 'the unacknowledged message redelivered');
    expect(a.got[2]!.payload.toString()).toBe('before-2');
    const pub2 = await mqtt.connectAsync(url, { clientId: `pub-${uid()}` });
    await publish(pub2, ['after']);
    await pub2.endAsync();
    await waitFor(() => a.got.length === 4, 'a message published after the restart');
    for (const m of a.got.slice(2)) m.ack();
    await a.session.stop();
  }, 60_000);

  it('drops a connection whose broker stops answering PINGREQ and reconnects when it answers again', async () => {
    const filter = groupFilter();
    const a = recorder(url, `f-${uid()}`, filter, { keepalive: 1 });
    await a.session.start();
    const pid = Number(readFileSync(join(dir, 'mosquitto.pid'), 'utf8').trim());
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(() => a.states.at(-1) === false, 'the frozen broker detected', 10_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor(() => a.states.at(-1) === true, 'reconnected', 20_000);
    await a.session.stop();
  }, 40_000);
});

describe('ingest consumer', () => {
  it('refuses to start with credentials the broker refuses (dynamic security)', async () => {
    const broker = await startTestBroker({ dynsec: true });
    try {
      const logger = createLogger('silent');
      const batcher = createBatcher({ pool: null as never, logger, metrics: createMetrics(), maxBatch: 10, slots: 1, onCommitted: () => undefined });
      const consumer = createIngestConsumer({
        urls: [broker.url],
        username: broker.credentials.MQTT_USERNAME,
        password: 'wrong-password',
        connections: 2,
        inflight: 10,
        maxPending: 10,
        instance: uid(),
        shareGroup: 'tagwatch',
        retentionDays: 30,
        batcher,
        logger,
      });
      await expect(consumer.start()).rejects.toThrow(/refused the connection .*reason 0x8[67]/);
      expect(consumer.connected).toBe(false);
    } finally {
      broker.stop();
    }
  });

  it('stops reading from the broker while too many readings await commit, and acknowledges each only after its commit', async () => {
    const db = await createTestDatabase();
    const broker = await startTestBroker();
    const logger = createLogger('silent');
    const instance = uid();
    const locker = await db.pool.connect();
    const pubc = await mqtt.connectAsync(broker.url, { clientId: `pub-${uid()}` });
    const batcher = createBatcher({ pool: db.pool, logger, metrics: createMetrics(), maxBatch: 2000, slots: 2, onCommitted: () => undefined });
    const consumer = createIngestConsumer({
      urls: [broker.url],
      connections: 1,
      inflight: 1000,
      maxPending: 100,
      instance,
      shareGroup: 'tagwatch',
      retentionDays: 30,
      batcher,
      logger,
    });
    try {
      await db.pool.query(`INSERT INTO devices (id, kind) SELECT 'dev-' || g, 'combined' FROM generate_series(0, 6) g`);
      await consumer.start();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE readings IN ACCESS EXCLUSIVE MODE'); // every write waits: nothing commits
      const base = Date.now() - 3600_000;
      const pad = 'x'.repeat(1000); // ~1 KB messages: a socket read holds few of them
      const payloads = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ ts: new Date(base + i * 1000).toISOString(), battery_pct: 50, pad }));
      await publish(pubc, payloads);
      await waitFor(() => consumer.held >= 100, 'intake reaching its limit');
      await new Promise((r) => setTimeout(r, 1000));
      // paused: the broker holds the rest although the window (1000) would let it send them all
      expect(consumer.held).toBeGreaterThanOrEqual(100);
      expect(consumer.held).toBeLessThan(400);
      expect((await db.pool.query(`SELECT count(*)::int n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n).toBeGreaterThan(0);
      await locker.query('ROLLBACK');
      await waitFor(async () => (await db.pool.query(`SELECT count(*)::int n FROM readings`)).rows[0].n === 1000, 'all 1000 stored after the lock', 30_000);
      await waitFor(() => consumer.held === 0, 'nothing held');
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      locker.release();
      consumer.pause();
      await batcher.idle();
      await consumer.stop();
      await pubc.endAsync();
    }
    // every message was acknowledged after its commit: the session has nothing to redeliver
    const again = recorder(broker.url, `tagwatch-ingest-${instance}-0`, groupFilter('tagwatch'));
    await again.session.start();
    expect(await settle(again)).toBe(0);
    await again.session.stop();
    broker.stop();
    await db.drop();
  }, 60_000);
});

describe('ingest batcher', () => {
  it('writes batches cut ahead while its slot was busy: in order, after commit, duplicates once, conflicts rejected', async () => {
    const db = await createTestDatabase();
    const logger = createLogger('silent');
    const locker = await db.pool.connect();
    const batcher = createBatcher({ pool: db.pool, logger, metrics: createMetrics(), maxBatch: 250, slots: 1, onCommitted: () => undefined });
    try {
      await db.pool.query(`INSERT INTO devices (id, kind) SELECT 'dev-' || g, 'combined' FROM generate_series(0, 9) g`);
      const base = Date.now() - 3600_000;
      const fixes = (device: number) => Array.from({ length: 50 }, (_, i) => ({ ts: new Date(base + i * 1000).toISOString(), lat: 52 + device / 100, lon: -1.1, accuracy_m: 5 }));
      const messages: Array<{ topic: string; body: unknown }> = [];
      for (let d = 0; d < 9; d++) messages.push({ topic: `tags/v1/dev-${d}/gps`, body: fixes(d) });
      // batches of 250: dev-0..4 (held by the lock), then dev-5..8 and a repeat of dev-1's message,
      // cut ahead with its COPY text while the first waits; the repeat means the COPY meets
      // stored identities and the batch goes through the statement instead
      messages.push({ topic: 'tags/v1/dev-1/gps', body: fixes(1) });
      // a different reading under a stored identity, and one more device, in the third batch
      messages.push({ topic: 'tags/v1/dev-2/gps', body: { ...fixes(2)[0], lat: 53.5 } });
      messages.push({ topic: 'tags/v1/dev-9/gps', body: fixes(9) });
      const done: number[] = [];
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE readings IN ACCESS EXCLUSIVE MODE'); // the first write waits
      messages.forEach((m, i) => {
        const parsed = parseMessage(m.topic, Buffer.from(JSON.stringify(m.body)), Date.now(), 30);
        batcher.add({ topic: m.topic, readings: parsed.readings, rejections: parsed.rejections, done: () => done.push(i) });
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(done, 'nothing acknowledged before its commit').toEqual([]);
      await locker.query('ROLLBACK');
      await waitFor(() => done.length === messages.length, 'every message done', 20_000);
      expect(done).toEqual(messages.map((_, i) => i));
      const stored = await db.pool.query<{ device_id: string; n: number }>(`SELECT device_id, count(*)::int n FROM readings GROUP BY 1 ORDER BY 1`);
      expect(stored.rows).toEqual(Array.from({ length: 10 }, (_, d) => ({ device_id: `dev-${d}`, n: 50 })));
      const rej = await db.pool.query<{ reason: string }>(`SELECT reason FROM rejections`);
      expect(rej.rows.map((r) => r.reason)).toEqual([expect.stringMatching(/^conflict: a different gps reading of dev-2 at /)]);
      const kept = await db.pool.query(`SELECT lat FROM readings WHERE device_id = 'dev-2' AND ts = $1`, [fixes(2)[0]!.ts]);
      expect(kept.rows).toEqual([{ lat: 52.02 }]);
    } finally {
      locker.release();
      await batcher.idle();
      batcher.stop();
      await db.drop();
    }
  }, 40_000);

  it('a COPY-sized batch with an inactive and an unknown device stores the rest and rejects theirs', async () => {
    const db = await createTestDatabase();
    const batcher = createBatcher({ pool: db.pool, logger: createLogger('silent'), metrics: createMetrics(), maxBatch: 2000, slots: 1, onCommitted: () => undefined });
    try {
      await db.pool.query(`INSERT INTO devices (id, kind, active) SELECT 'dev-' || g, 'combined', g < 4 FROM generate_series(0, 4) g`);
      const base = Date.now() - 3600_000;
      const fixes = Array.from({ length: 50 }, (_, i) => ({ ts: new Date(base + i * 1000).toISOString(), lat: 52.1, lon: -1.1, accuracy_m: 5 }));
      const topics = ['dev-0', 'dev-1', 'dev-4', 'dev-2', 'dev-3', 'dev-none'].map((d) => `tags/v1/${d}/gps`);
      let done = 0;
      for (const topic of topics) {
        const parsed = parseMessage(topic, Buffer.from(JSON.stringify(fixes)), Date.now(), 30);
        batcher.add({ topic, readings: parsed.readings, rejections: parsed.rejections, done: () => done++ });
      }
      await waitFor(() => done === topics.length, 'every message done', 20_000);
      const stored = await db.pool.query<{ device_id: string; n: number }>(`SELECT device_id, count(*)::int n FROM readings GROUP BY 1 ORDER BY 1`);
      expect(stored.rows).toEqual(['dev-0', 'dev-1', 'dev-2', 'dev-3'].map((device_id) => ({ device_id, n: 50 })));
      const rej = await db.pool.query<{ device_id: string; code: string; n: number }>(
        `SELECT device_id, split_part(reason, ':', 1) code, count(*)::int n FROM rejections GROUP BY 1, 2 ORDER BY 1`,
      );
      expect(rej.rows).toEqual([
        { device_id: 'dev-4', code: 'inactive_device', n: 50 },
        { device_id: 'dev-none', code: 'unknown_device', n: 50 },
      ]);
    } finally {
      await batcher.idle();
      batcher.stop();
      await db.drop();
    }
  }, 40_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { createIngestConsumer } from '../../ingest/consumer.js';
import { createBatcher } from '../../ingest/batcher.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { freePort, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { createTestDatabase, waitFor } from '../support/env.js';

/**
 * Readings a device was told were received while ingest was away and Mosquitto restarted
 * (issue 14 §3). Mosquitto 2.0 does not restore shared subscriptions from its persistence, so
 * with `INGEST_SUBSCRIPTION=shared` what devices publish after the restart, before ingest
 * subscribes again, is acknowledged and dropped (what was already queued for the session is
 * kept); an exclusive (ordinary) subscription is restored and queued for.
 */

const uid = () => Math.random().toString(36).slice(2, 8);
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
let port: number;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`INSERT INTO devices (id, kind) VALUES ('br-dev', 'combined')`);
  dir = mkdtempSync(join(tmpdir(), 'tagwatch-restart-'));
  port = await freePort();
  await startMosquitto(dir, port);
});
afterAll(async () => {
  stopMosquitto(dir);
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

function consumer(url: string, instance: string, subscription: 'shared' | 'exclusive') {
  const logger = createLogger('silent');
  const batcher = createBatcher({ pool: db.pool, logger, metrics: createMetrics(), maxBatch: 100, slots: 1, onCommitted: () => undefined });
  const c = createIngestConsumer({ urls: [url], connections: 2, inflight: 100, maxPending: 1000, instance, shareGroup: `g${instance}`, subscription, retentionDays: 30, batcher, logger });
  return { c, batcher };
}

/** Publishes `n` status readings at QoS 1; resolves once the broker acknowledged every one. */
async function publish(url: string, from: number, n: number): Promise<void> {
  const pub = await mqtt.connectAsync(url, { clientId: `pub-${uid()}` });
  const base = Date.now() - 3600_000;
  await Promise.all(
    Array.from({ length: n }, (_, i) => pub.publishAsync('tags/v1/br-dev/status', JSON.stringify({ ts: new Date(base + (from + i) * 1000).toISOString(), battery_pct: 50 }), { qos: 1 })),
  );
  await pub.endAsync();
}

const stored = async () => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE device_id = 'br-dev'`)).rows[0].n as number;

/** ingest subscribes, goes away; 10 readings; the broker stops (SIGTERM) and starts; 10 more; ingest comes back. */
async function scenario(subscription: 'shared' | 'exclusive'): Promise<number> {
  await db.pool.query(`DELETE FROM readings WHERE device_id = 'br-dev'`);
  const url = `mqtt://127.0.0.1:${port}`;
  const instance = uid();
  const first = consumer(url, instance, subscription);
  await first.c.start();
  await first.c.stop();
  first.batcher.stop();
  await publish(url, 0, 10);
  stopMosquitto(dir); // Mosquitto writes its persistence file on shutdown
  await startMosquitto(dir, port);
  await publish(url, 10, 10);
  const again = consumer(url, instance, subscription);
  await again.c.start();
  try {
    if (subscription === 'exclusive') await waitFor(async () => (await stored()) === 20, 'the 20 readings stored', 10_000);
    else await new Promise((r) => setTimeout(r, 1500));
    return await stored();
  } finally {
    await again.c.stop();
    again.batcher.stop();
  }
}

describe('a Mosquitto restart while ingest is away', () => {
  it('INGEST_SUBSCRIPTION=exclusive: every reading the broker acknowledged before and after the restart is stored', async () => {
    expect(await scenario('exclusive')).toBe(20);
  }, 60_000);

  it('INGEST_SUBSCRIPTION=shared: Mosquitto 2.0 keeps what was queued but not the subscription: the readings published after the restart are lost', async () => {
    // if this starts to fail, the broker now keeps shared subscriptions: docs/operations.md needs updating
    expect(await scenario('shared')).toBe(10);
  }, 60_000);
});

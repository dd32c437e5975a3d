import { createOutboxState } from '../../alerts/outbox.js';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createTestDatabase, heldTransaction, stack, waitFor } from '../support/env.js';
import { startReceiver } from '../support/sse.js';
import { freePort } from '../../scripts/stack/services.js';
import { createRedis } from '../../platform/redis.js';
import { withTransaction, type TxClient } from '../../platform/db.js';
import { createLogger } from '../../platform/logger.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import type { GateSettings } from '../../alerts/webhook-gate.js';
import { encryptSecret } from '../../alerts/secrets.js';
import {
  backoffMs,
  createWebhookWorker,
  DEFAULT_DELIVERY,
  dispatchFeed,
  requeuePending,
  urlProblem,
  WEBHOOK_QUEUE,
  type DeliveryJob,
  type DeliverySettings,
} from '../../alerts/webhooks.js';

/**
 * Webhook delivery against real HTTP receivers on loopback (healthy, hanging, refusing), real
 * PostgreSQL and Redis. Assertions use the order of events and the attempt log, and lower
 * bounds that the design guarantees (a backoff is never shorter), not how fast things were.
 */

const SECRET = 'a-webhook-secret-of-32-characters';
const KEY = randomBytes(32);
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A receiver that accepts requests and never answers; counts them and the most open at once. */
async function hangingReceiver() {
  const sockets = new Set<Socket>();
  let requests = 0;
  let open = 0;
  let maxOpen = 0;
  const server = http.createServer((req) => {
    requests++;
    maxOpen = Math.max(maxOpen, ++open);
    req.socket.once('close', () => open--);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    requests: () => requests,
    maxOpen: () => maxOpen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function setup(settings: Partial<DeliverySettings>, gate: Partial<GateSettings> = {}) {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const prefix = `t${randomBytes(5).toString('hex')}`;
  const connections: Redis[] = [];
  const redis = createRedis({ REDIS_URL: stack().REDIS_URL });
  connections.push(redis);
  const queue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection: redis, prefix });
  const start = () => {
    const c = redis.duplicate();
    connections.push(c);
    // loopback receivers: private addresses allowed unless a test says otherwise
    return createWebhookWorker(db.pool, c, prefix, createLogger('silent'), { ...DEFAULT_DELIVERY, allowPrivate: true, secretsKey: KEY, ...settings }, gate);
  };
  let delivery = start();
  let running = true;
  cleanups.push(async () => {
    if (running) await delivery.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    for (const c of connections) c.disconnect();
  });
  let subjects = 0;
  const state = createOutboxState();
  const dispatch = async () => {
    while ((await dispatchFeed(db.pool, queue, delivery.hooks, state)) > 0);
  };
  return {
    dispatch,
    db,
    queue,
    get delivery() {
      return delivery;
    },
    /** stops the worker (as at a service shutdown: running attempts finish) */
    async stopWorker() {
      await delivery.close();
      running = false;
    },
    /** a new worker (a new gate) on the same queue */
    startWorker() {
      delivery = start();
      running = true;
    },
    requeue: () => requeuePending(db.pool, queue),
    async addWebhook(url: string): Promise<string> {
      const id = randomUUID();
      await db.pool.query(`INSERT INTO webhooks (id, owner_id, owner_role, url, secret_enc) VALUES ($1, 'sup-1', 'supervisor', $2, $3)`, [id, url, encryptSecret(KEY, id, SECRET)]);
      return id;
    },
    /** raises `n` strap tampers (one per new subject) and dispatches them; returns their feed ids */
    /** raises one strap tamper for a new subject in `tx` (default: a transaction of its own) */
    async raiseOne(tx?: TxClient): Promise<void> {
      const s = `S${++subjects}`;
      const write = async (on: TxClient) => {
        await on.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY['om-1'])`, [s]);
        await raiseAlert(on, { type: 'strap_tamper', subjectId: s, deviceId: null, zoneId: null, startedAt: new Date(), late: false, evidence: [] });
      };
      await (tx ? write(tx) : withTransaction(db.pool, write));
    },
    async raise(n: number): Promise<string[]> {
      for (let i = 0; i < n; i++) await this.raiseOne();
      await dispatch();
      return (await db.pool.query<{ id: string }>(`SELECT id::text FROM alert_events ORDER BY id DESC LIMIT $1`, [n])).rows.map((r) => r.id).reverse();
    },
    async attempts(webhookId: string) {
      const r = await db.pool.query<{ delivery_id: string; start: number; end: number; status_code: number | null; error: string | null }>(
        `SELECT t.delivery_id::text, extract(epoch FROM t.at) * 1000 AS start, extract(epoch FROM t.at) * 1000 + t.duration_ms AS end, t.status_code, t.error
           FROM webhook_attempts t JOIN webhook_deliveries d ON d.id = t.delivery_id WHERE d.webhook_id = $1 ORDER BY t.at, t.id`,
        [webhookId],
      );
      return r.rows.map((x) => ({ ...x, start: Number(x.start), end: Number(x.end) }));
    },
    async statuses(webhookId: string) {
      const r = await db.pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int n FROM webhook_deliveries WHERE webhook_id = $1 GROUP BY status`, [webhookId]);
      return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
    },
  };
}

describe('webhook delivery isolation', () => {
  it('a hanging and a refusing receiver do not hold up a healthy one; every attempt is logged', async () => {
    // few worker slots and one per receiver: without per-receiver lanes the hanging receiver's
    // deliveries would take every slot for the whole attempt timeout
    const t = await setup({ concurrency: 3, perReceiver: 1, timeoutMs: 10_000, connectTimeoutMs: 2000, breakerFailures: 3 });
    const healthy = await startReceiver(SECRET);
    const hanging = await hangingReceiver();
    cleanups.push(() => healthy.close(), () => hanging.close());
    const hangingId = await t.addWebhook(hanging.url);
    const refusingId = await t.addWebhook(`http://127.0.0.1:${await freePort()}/hook`);
    const healthyId = await t.addWebhook(healthy.url);
    const events = await t.raise(12);

    await waitFor(() => new Set(healthy.received.map((r) => r.delivery)).size === 12, 'all 12 deliveries at the healthy receiver');
    // ordering: the healthy receiver had everything before the hanging receiver's first attempt ended
    expect(await t.attempts(hangingId)).toEqual([]);
    expect(hanging.requests()).toBeLessThanOrEqual(1);
    expect(healthy.received.map((r) => r.delivery).sort()).toEqual([...events].sort());
    expect(healthy.received.every((r) => r.validSignature && r.json.delivery_id === r.delivery && r.json.event === 'raised')).toBe(true);
    expect(healthy.received).toHaveLength(12); // no repeats
    // the last attempt's log may still be committing when its request has arrived
    await waitFor(async () => (await t.statuses(healthyId)).delivered === 12, 'the 12 deliveries marked delivered');
    expect(await t.statuses(healthyId)).toEqual({ delivered: 12 });
    const ok = await t.attempts(healthyId);
    expect(ok.map((a) => a.status_code)).toEqual(Array(12).fill(200));

    // the refusing receiver: failures logged, and the breaker stopped attempts after 3
    await waitFor(() => t.delivery.gate.state(refusingId, Date.now()).breaker !== 'closed', 'the breaker of the refusing receiver');
    const refused = await waitFor(async () => {
      const a = await t.attempts(refusingId);
      return a.length >= 3 && a;
    }, 'three refused attempts logged');
    expect(refused.every((a) => a.status_code === null && /ECONNREFUSED/.test(a.error ?? ''))).toBe(true);
    expect(refused.length).toBeLessThan(12);

    // the hanging receiver: its one attempt times out and is logged; it never had two at once
    const hung = await waitFor(async () => {
      const a = await t.attempts(hangingId);
      return a.length >= 1 && a;
    }, 'the hanging attempt logged', 30_000);
    expect(hung[0]).toMatchObject({ status_code: null, error: 'timed out after 10000 ms' });
    await t.stopWorker(); // lets the attempt in flight end and be logged
    expect(hanging.maxOpen()).toBe(1);
    expect(hanging.requests()).toBe((await t.attempts(hangingId)).length);
  });
});

describe('webhook dispatch', () => {
  it('delivers an event whose transaction committed after a later one: no feed id is skipped', async () => {
    const t = await setup({});
    const receiver = await startReceiver(SECRET);
    cleanups.push(() => receiver.close());
    await t.addWebhook(receiver.url);
    const slow = await heldTransaction(t.db.pool);
    try {
      await t.raiseOne(slow.tx); // takes feed id n and stays uncommitted
      const [later] = await t.raise(1); // id n + 1, committed and dispatched
      await waitFor(() => receiver.received.some((r) => r.delivery === later), 'the later event delivered');
    } finally {
      await slow.commit();
    }
    await t.dispatch();
    const all = (await t.db.pool.query<{ id: string }>(`SELECT id::text FROM alert_events ORDER BY id`)).rows.map((r) => r.id);
    expect(all).toHaveLength(2);
    await waitFor(() => new Set(receiver.received.map((r) => r.delivery)).size === 2, 'the earlier event delivered too');
    expect(receiver.received.map((r) => r.delivery).sort()).toEqual([...all].sort());
  });
});

describe('webhook retries and the circuit breaker', () => {
  it('opens the breaker on a failing receiver, probes after the cooldown, closes on success; retries keep their backoff', async () => {
    const t = await setup({ perReceiver: 1, breakerFailures: 3 }, { cooldownMs: 1500 });
    const receiver = await startReceiver(SECRET);
    cleanups.push(() => receiver.close());
    receiver.setStatus(503);
    const id = await t.addWebhook(receiver.url);
    await t.raise(6);

    await waitFor(() => t.delivery.gate.state(id, Date.now()).breaker === 'open', 'the breaker open');
    receiver.setStatus(200);
    await waitFor(async () => (await t.statuses(id)).delivered === 6, 'all 6 delivered', 30_000);
    expect(t.delivery.gate.state(id, Date.now()).breaker).toBe('closed');

    const attempts = await t.attempts(id);
    // every attempt is logged: one row per request the receiver saw
    expect(attempts).toHaveLength(receiver.received.length);
    // the breaker opened at the third failure; nothing started during the cooldown after it
    const failures = attempts.filter((a) => a.error !== null).sort((a, b) => a.end - b.end);
    const opening = failures[2]!;
    const openedAt = opening.end;
    const later = attempts.filter((a) => a !== opening && a.start >= openedAt);
    expect(later.length).toBeGreaterThan(0);
    const timeline = JSON.stringify(attempts.map((a) => [a.delivery_id, a.start - attempts[0]!.start, a.end - attempts[0]!.start, a.status_code]));
    expect(Math.min(...later.map((a) => a.start)), `attempts (delivery, start, end, status): ${timeline}`).toBeGreaterThanOrEqual(openedAt + 1500 - 5);
    // each delivery's retries waited at least its backoff (1 s, 2 s, ...)
    const byDelivery = new Map<string, typeof attempts>();
    for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
    let retried = 0;
    for (const list of byDelivery.values()) {
      expect(list.at(-1)!.status_code).toBe(200);
      for (let i = 1; i < list.length; i++) {
        retried++;
        expect(list[i]!.start - list[i - 1]!.end).toBeGreaterThanOrEqual(backoffMs(i) - 5);
      }
    }
    expect(retried).toBeGreaterThanOrEqual(3);
    expect(new Set(receiver.received.filter((r) => r.validSignature).map((r) => r.delivery)).size).toBe(6);
  });

  it('gives up a delivery after 24 hours when the breaker still holds it back, without another attempt', async () => {
    const t = await setup({ perReceiver: 1, breakerFailures: 1 }, { cooldownMs: 600_000 });
    const id = await t.addWebhook(`http://127.0.0.1:${await freePort()}/hook`);
    await t.raise(2);
    await waitFor(() => t.delivery.gate.state(id, Date.now()).breaker === 'open', 'the breaker open');
    const attempts = await waitFor(async () => (await t.attempts(id)).length, 'the failed attempt logged');
    expect(attempts).toBe(1);
    await t.queue.obliterate({ force: true });
    // the jobs again, as enqueued 25 hours ago (BullMQ keeps a job's creation time across delays)
    const pending = await t.db.pool.query<{ id: string }>(`SELECT id::text FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id`, [id]);
    for (const d of pending.rows) await t.queue.add('deliver', { deliveryId: d.id, webhookId: id }, { jobId: `d${d.id}`, timestamp: Date.now() - 25 * 3600_000 });
    await waitFor(async () => (await t.statuses(id)).failed === 2, 'both deliveries given up');
    expect((await t.attempts(id)).length).toBe(attempts);
  });

  it('delivers everything after the worker restarted and Redis lost its jobs', async () => {
    const t = await setup({ breakerFailures: 1000 });
    const receiver = await startReceiver(SECRET);
    cleanups.push(() => receiver.close());
    receiver.setStatus(500);
    const id = await t.addWebhook(receiver.url);
    const events = await t.raise(3);
    await waitFor(async () => new Set((await t.attempts(id)).map((a) => a.delivery_id)).size === 3, 'a failed attempt for each delivery');
    await t.stopWorker(); // the service stops with the deliveries pending...
    await t.queue.obliterate({ force: true }); // ...and Redis comes back empty
    receiver.setStatus(200);
    expect(await t.requeue()).toBe(3);
    expect(await t.requeue()).toBe(0); // enqueued once
    t.startWorker();
    await waitFor(async () => (await t.statuses(id)).delivered === 3, 'all 3 delivered after the requeue');
    const delivered = receiver.received.filter((r) => r.validSignature).map((r) => r.delivery);
    expect(new Set(delivered)).toEqual(new Set(events));
    expect((await t.attempts(id)).length).toBe(receiver.received.length);
  });
});

/** A loopback receiver that counts every connection and request it gets, and answers 200. */
async function countingReceiver() {
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    req.resume().on('end', () => res.writeHead(200).end());
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    counts: () => ({ connections, requests }),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('webhook SSRF: the address connected to is checked on every attempt', () => {
  it('a name that resolves to a public address at registration and to 127.0.0.1 at delivery gets no POST; the attempt is logged as refused', async () => {
    const receiver = await countingReceiver();
    cleanups.push(() => receiver.close());
    // DNS rebinding: the first answer is public, every later one loopback
    const asked: string[] = [];
    const resolve = async (host: string) => {
      asked.push(host);
      return asked.length === 1 ? ['93.184.215.14'] : ['127.0.0.1'];
    };
    const url = `http://localhost:${receiver.port}/hook`;
    expect(await urlProblem(url, false, resolve)).toBeNull(); // registration saw a public address
    const t = await setup({ allowPrivate: false, resolve });
    const id = await t.addWebhook(url);
    await t.raise(1);
    const [attempt] = await waitFor(async () => {
      const a = await t.attempts(id);
      return a.length >= 1 && a;
    }, 'the refused attempt logged');
    expect(attempt).toMatchObject({ status_code: null });
    expect(attempt!.error).toMatch(/refused: webhook host localhost resolves to a non-public address \(127\.0\.0\.1, loopback\)/);
    expect(asked.slice(1).every((h) => h === 'localhost')).toBe(true);
    expect(receiver.counts()).toEqual({ connections: 0, requests: 0 });
    // nothing left the service, so no delivery of personal data is audited
    expect((await t.db.pool.query(`SELECT count(*)::int n FROM audit_log WHERE action = 'webhook.deliver'`)).rows[0].n).toBe(0);
  });

  it('a literal non-public address in the URL is refused at delivery too (a row registered before the check, or by hand)', async () => {
    const receiver = await countingReceiver();
    cleanups.push(() => receiver.close());
    const t = await setup({ allowPrivate: false });
    const id = await t.addWebhook(`http://[::ffff:127.0.0.1]:${receiver.port}/hook`);
    const id2 = await t.addWebhook(`http://127.0.0.1:${receiver.port}/hook`);
    await t.raise(1);
    for (const w of [id, id2]) {
      const [attempt] = await waitFor(async () => {
        const a = await t.attempts(w);
        return a.length >= 1 && a;
      }, 'the refused attempt logged');
      expect(attempt!.error).toMatch(/^refused: .*non-public address/);
    }
    expect(receiver.counts()).toEqual({ connections: 0, requests: 0 });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { Redis } from 'ioredis';
import { ConfigSchema } from '../../platform/config.js';
import { freePort } from '../../scripts/stack/services.js';
import { startServiceChild, type Mode, type ServiceChild } from '../../bench/common/service.js';
import { offset, TOWN } from '../../bench/geofence/town.js';
import { createTestDatabase, stack, startTestBroker, token, waitFor, type TestBroker } from '../support/env.js';
import { openStream, startReceiver } from '../support/sse.js';

/**
 * Issue 14 §1: `tagwatch ingest` ×2, `tagwatch worker` ×2 and `tagwatch api` ×2 as separate OS
 * processes against one database, one Redis prefix and one Mosquitto. The load splits (MQTT
 * shared subscription, BullMQ competing workers), nothing is stored, evaluated, alerted or
 * delivered twice, and each api's SSE clients get every alert whichever worker raised it.
 * Each process's share is read from its own /metrics (METRICS_PORT for ingest and worker).
 */

const DEVICES = 200;
/** every 5th device stays inside its exclusion zone */
const BREACHING = (i: number) => i % 5 === 0;
/** fixes per device, FIX_STEP_MS apart in device time: 70 s inside > the 60 s grace */
const FIXES = 8;
const FIX_STEP_MS = 10_000;
const PUBLISHED = DEVICES * FIXES;

const device = (i: number) => `mi-${i}`;
const subject = (i: number) => `smi-${i}`;
/** the zone's centre: devices 400 m apart on a grid around the town */
const centre = (i: number) => offset(TOWN.lon, TOWN.lat, (i % 20) * 400, Math.floor(i / 20) * 400);

/** A counter's value (summed over its label sets) in Prometheus text. */
function counter(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

describe('parts as separate processes: ingest ×2, worker ×2, api ×2 on one stack', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let broker: TestBroker;
  const prefix = `mi${randomBytes(4).toString('hex')}`;
  const children: ServiceChild[] = [];
  const apiPorts: number[] = [];
  const metricsPorts: { mode: Mode; port: number }[] = [];

  beforeAll(async () => {
    const s = stack();
    db = await createTestDatabase();
    broker = await startTestBroker(); // anonymous: the devices need no provisioning
    const ids = Array.from({ length: DEVICES }, (_, i) => i);
    // fitted and zoned 11 minutes ago: the fixes below (from 5 minutes ago) fall inside both
    await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT 'smi-' || x, 'multi ' || x, 'fixed', 'amber', ARRAY['om-multi'] FROM unnest($1::int[]) x`, [ids]);
    await db.pool.query(`INSERT INTO devices (id, kind) SELECT 'mi-' || x, 'gps' FROM unnest($1::int[]) x`, [ids]);
    await db.pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT 'smi-' || x, 'mi-' || x, now() - interval '11 minutes' FROM unnest($1::int[]) x`, [ids]);
    await db.pool.query(
      `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, grace_s, created_by, created_at)
       SELECT 'smi-' || x, 'exclusion', 'target', g::jsonb, 150, 60, 'multi', now() - interval '11 minutes' FROM unnest($1::int[], $2::text[]) AS t(x, g)`,
      [ids, ids.map((i) => JSON.stringify({ type: 'Point', coordinates: centre(i) }))],
    );

    // the children's configuration: none inherited from this process, the same stack for all
    const inherited: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(ConfigSchema.properties)) delete inherited[k];
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      DATABASE_URL: db.url,
      REDIS_URL: s.REDIS_URL,
      MQTT_URL: broker.url,
      JWT_SECRET: s.JWT_SECRET,
      SECRETS_KEY: s.SECRETS_KEY,
      QUEUE_PREFIX: prefix,
      MQTT_SHARE_GROUP: prefix,
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOW_PRIVATE: 'true',
    };
    const envOf = async (mode: Mode, n: number): Promise<NodeJS.ProcessEnv> => {
      if (mode === 'api') {
        const port = await freePort();
        apiPorts.push(port);
        return { ...env, PORT: String(port) };
      }
      const port = await freePort();
      metricsPorts.push({ mode, port });
      // the worker runs retention as the schema owner, as in production
      return mode === 'ingest' ? { ...env, INGEST_INSTANCE: `${prefix}-${n}`, METRICS_PORT: String(port) } : { ...env, MIGRATION_DATABASE_URL: db.ownerUrl, METRICS_PORT: String(port) };
    };
    // the first worker applies the (already applied) migrations alone; the others start together
    children.push(await startServiceChild('worker', await envOf('worker', 0), 90_000));
    const rest: [Mode, number][] = [['worker', 1], ['ingest', 0], ['ingest', 1], ['api', 0], ['api', 1]];
    const envs: NodeJS.ProcessEnv[] = [];
    for (const [m, n] of rest) envs.push(await envOf(m, n));
    const started = await Promise.allSettled(rest.map(([m], i) => startServiceChild(m, envs[i]!, 90_000)));
    for (const r of started) if (r.status === 'fulfilled') children.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }, 240_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    broker?.stop();
    await db?.drop();
    const redis = new Redis(stack().REDIS_URL, { maxRetriesPerRequest: 2 });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  });

  it('an ingest or worker process serves its /metrics to an admin or supervisor only', async () => {
    const { port } = metricsPorts.find((m) => m.mode === 'ingest')!;
    const bare = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(bare.status).toBe(401);
    expect(bare.headers.get('content-type')).toBe('application/problem+json');
    expect((await bare.json()).status).toBe(401);
    const manager = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${await token('offender_manager', 'om-multi')}` } });
    expect(manager.status).toBe(403);
    const forged = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer not.a.token' } });
    expect(forged.status).toBe(401);
    const admin = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${await token('admin')}` } });
    expect(admin.status).toBe(200);
    expect(await admin.text()).toContain('tagwatch_ingest_messages_total');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it('splits the load and stores, evaluates, alerts and delivers each thing once; both apis stream every alert', async () => {
    const tails = () => children.map((c) => `--- ${c.mode} (pid ${c.pid}):\n${c.tail()}`).join('\n');
    const supervisor = await token('supervisor', 'sup-multi');
    // one webhook (registered through the second api), one SSE client on each api
    const hook = await startReceiver(`multi-secret-${prefix}-0123456789abcdef`);
    const reg = await fetch(`http://127.0.0.1:${apiPorts[1]}/v1/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${supervisor}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: hook.url, secret: `multi-secret-${prefix}-0123456789abcdef` }),
    });
    expect(reg.status, await reg.clone().text()).toBe(201);
    const streams = await Promise.all(apiPorts.map((p) => openStream(`http://127.0.0.1:${p}/v1/alerts/stream`, supervisor)));
    try {
      expect(streams.map((s) => s.status)).toEqual([200, 200]);

      // 200 devices × 8 fixes, 10 s apart in device time from 5 minutes ago, published over QoS 1 as
      // fast as the broker takes them, in 8 rounds (one fix per device each)
      const base = Date.now() - 5 * 60_000;
      const pubs = await Promise.all([0, 1, 2, 3].map((n) => mqtt.connectAsync(broker.url, { clientId: `multi-pub-${prefix}-${n}` })));
      const stored = async () => Number((await db.pool.query(`SELECT count(*) n FROM readings`)).rows[0].n);
      for (let k = 0; k < FIXES; k++) {
        await Promise.all(
          Array.from({ length: DEVICES }, (_, i) => {
            const [lon, lat] = BREACHING(i) ? centre(i) : offset(...centre(i), 1500, 0);
            const fix = { ts: new Date(base + k * FIX_STEP_MS).toISOString(), lat, lon, accuracy_m: 10 };
            return pubs[i % pubs.length]!.publishAsync(`tags/v1/${device(i)}/gps`, JSON.stringify(fix), { qos: 1 });
          }),
        );
        // a round stored (and signalled) before the next: each round makes new evaluation jobs,
        // and each device's fixes arrive in device-time order, so each fix is evaluated once
        await waitFor(async () => (await stored()) >= (k + 1) * DEVICES, `round ${k} stored\n${tails()}`, 30_000, 50);
        await new Promise((r) => setTimeout(r, 200));
      }
      await Promise.all(pubs.map((c) => c.endAsync()));

      // every reading stored once
      const expected = new Set(Array.from({ length: DEVICES }, (_, i) => i).filter(BREACHING).map(subject));
      // every expected breach alerted; then every event on both streams and at the webhook
      await waitFor(async () => Number((await db.pool.query(`SELECT count(*) n FROM alerts`)).rows[0].n) >= expected.size, `${expected.size} alerts\n${tails()}`, 60_000, 200);
      const eventIds = async () => (await db.pool.query<{ id: string }>(`SELECT id::text FROM alert_events ORDER BY id`)).rows.map((r) => r.id);
      let seen = '';
      await waitFor(
        async () => {
          const ids = await eventIds();
          const missing = (got: Set<string>) => ids.filter((x) => !got.has(x)).length;
          const webhook = missing(new Set(hook.received.map((r) => r.delivery!)));
          const onStreams = streams.map((s) => missing(new Set(s.events.map((e) => e.data.id))));
          seen = `${ids.length} events; missing at the webhook ${webhook}, on the streams ${onStreams.join(', ')}`;
          return webhook === 0 && onStreams.every((n) => n === 0);
        },
        'every alert event delivered to the webhook and both streams',
        60_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${seen}\n${tails()}`);
      });
      await new Promise((r) => setTimeout(r, 3000)); // a second evaluation, alert or delivery would show by now

      const readings = await db.pool.query<{ n: string; d: string }>(`SELECT count(*) n, count(DISTINCT (device_id, stream, ts)) d FROM readings`);
      expect({ n: Number(readings.rows[0]!.n), distinct: Number(readings.rows[0]!.d) }).toEqual({ n: PUBLISHED, distinct: PUBLISHED });
      expect(Number((await db.pool.query(`SELECT count(*) n FROM rejections`)).rows[0].n)).toBe(0);

      // alerts: one per expected breach, none other
      const alerts = (await db.pool.query<{ id: string; subject_id: string; type: string }>(`SELECT id::text, subject_id, type FROM alerts ORDER BY subject_id`)).rows;
      expect(alerts.map((a) => `${a.subject_id} ${a.type}`)).toEqual([...expected].sort().map((s) => `${s} exclusion_breach`));

      // deliveries: each alert event once at the webhook, on each stream once
      const ids = await eventIds();
      const raised = (await db.pool.query<{ n: string }>(`SELECT count(*) n FROM alert_events WHERE action = 'raised'`)).rows[0]!.n;
      expect(Number(raised)).toBe(expected.size);
      expect(hook.received.map((r) => r.delivery).sort()).toEqual([...ids].sort());
      expect(hook.received.every((r) => r.validSignature)).toBe(true);
      for (const s of streams) expect(s.events.map((e) => e.data.id).sort()).toEqual([...ids].sort());

      // the load split: each process's own counters
      const shares = await Promise.all(
        metricsPorts.map(async ({ mode, port }) => {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${supervisor}` } });
          expect(res.status).toBe(200);
          const text = await res.text();
          return { mode, messages: counter(text, 'tagwatch_ingest_messages_total'), stored: counter(text, 'tagwatch_readings_stored_total'), jobs: counter(text, 'tagwatch_evaluation_jobs_total'), fixes: counter(text, 'tagwatch_evaluation_fixes_total') };
        }),
      );
      const ingest = shares.filter((x) => x.mode === 'ingest');
      const worker = shares.filter((x) => x.mode === 'worker');
      console.log(`multi-instance shares: ${JSON.stringify(shares)}`);
      expect(ingest.map((x) => x.messages > 0)).toEqual([true, true]);
      // no message taken by both: the two shares sum to exactly what was published
      expect(ingest.reduce((a, x) => a + x.messages, 0)).toBe(PUBLISHED);
      expect(ingest.reduce((a, x) => a + x.stored, 0)).toBe(PUBLISHED);
      expect(worker.map((x) => x.jobs > 0)).toEqual([true, true]);
      // every fix evaluated once: a mark covered by an earlier job's read starts no replay
      // (docs/geofence.md, "Dirty marks covered by an earlier read")
      expect(worker.reduce((a, x) => a + x.fixes, 0)).toBe(PUBLISHED);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
      await hook.close();
    }
  }, 150_000);
});

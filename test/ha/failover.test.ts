import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { authHeader, createTestDatabase, stack, startTestBroker, startTestService, testConfig, token, waitFor, type TestBroker, type TestService } from '../support/env.js';
import { openStream } from '../support/sse.js';
import { connectThroughHaproxy } from '../../scripts/stack/ha.js';
import { currentLeader, haPgPorts, waitForPrimary } from '../../scripts/stack/ha-postgres.js';
import { haRedisPorts, redisPidFile, waitForMaster } from '../../scripts/stack/ha-redis.js';
import { startPublisher } from './publisher.js';

/**
 * Issue 14 §2, against the HA stack (`npm run test:ha`): the service stores readings and raises
 * alerts; the PostgreSQL primary is SIGKILLed (Patroni promotes the synchronous standby,
 * HAProxy routes to it) and then the Redis master (a Sentinel promotes the replica). A tag
 * publishes all along; every reading the broker acknowledged to it is stored exactly once,
 * every alert is raised once and reaches the SSE stream. Recovery times are printed and written
 * to .stack/ha-recovery.json.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: TestBroker;
let svc: TestService;
let pub: MqttClient;
let base: string;
/** `p`, or a failure naming `what` after `ms`: a step that hangs fails the test with its name. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

const pgPorts = haPgPorts();
const redisPorts = haRedisPorts();
const times: Record<string, number> = {};

async function api(method: 'GET' | 'POST', url: string, payload?: object) {
  return within(30_000, `${method} ${url}`, svc.app.inject({ method, url, headers: await authHeader('admin'), ...(payload ? { payload } : {}) }));
}

async function fit(subject: string, device: string) {
  await waitFor(async () => (await api('POST', '/v1/devices', { id: device, kind: 'combined' })).statusCode === 201, `device ${device} registered`, 60_000, 250);
  await waitFor(async () => (await api('POST', '/v1/subjects', { id: subject, display_name: `Person ${subject}`, cohort: 'free', rag: 'red', offender_manager_ids: ['om-1'] })).statusCode === 201, `subject ${subject}`, 60_000, 250);
  const fitted = await api('POST', `/v1/subjects/${subject}/assignments`, { device_id: device, start: new Date(Date.now() - 86400_000).toISOString() });
  expect(fitted.statusCode, fitted.body).toBe(201);
}

const tamper = (device: string) => within(30_000, `tamper of ${device}`, pub.publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts: new Date().toISOString(), battery_pct: 80, strap: 'open', event: 'strap_tamper' }), { qos: 1 }));
const alertsOf = async (subject: string) => (await within(10_000, 'alerts query', db.pool.query(`SELECT id FROM alerts WHERE subject_id = $1 AND type = 'strap_tamper'`, [subject]))).rows;

async function storedTs(device: string): Promise<number[]> {
  const r = await within(10_000, 'readings query', db.pool.query<{ ts: Date }>(`SELECT ts FROM readings WHERE device_id = $1 AND stream = 'status'`, [device]));
  return r.rows.map((x) => x.ts.getTime());
}

beforeAll(async () => {
  await waitForPrimary(pgPorts, 60_000, true);
  db = await createTestDatabase();
  broker = await startTestBroker();
  const s = stack();
  svc = await startTestService(
    testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, REDIS_URL: '', REDIS_SENTINELS: s.REDIS_SENTINELS!, REDIS_MASTER_NAME: s.REDIS_MASTER_NAME! }),
    { ingest: true, worker: true, feed: true },
  );
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  pub = await mqtt.connectAsync(broker.url, { clientId: 'ha-test-tamper' });
});

afterAll(async () => {
  await pub?.endAsync();
  await within(60_000, 'the service stopping', svc?.stop() ?? Promise.resolve());
  broker?.stop();
  await db?.drop().catch(() => undefined);
  if (Object.keys(times).length) writeFileSync(join(stack().STACK_DIR, 'ha-recovery.json'), JSON.stringify(times, null, 2) + '\n');
});

describe('failover of the HA engines under load', () => {
  it('loses and duplicates no acknowledged reading or alert when the PostgreSQL primary, then the Redis master, is SIGKILLed', async () => {
    await fit('HA-S0', 'HA-D0');
    await fit('HA-S1', 'HA-D1');
    const stream = await openStream(`${base}/v1/alerts/stream`, await token('offender_manager', 'om-1'));
    const tag = await startPublisher(broker.url, 'HA-D0', Date.now() - 7200_000);
    await tamper('HA-D1');
    await waitFor(async () => (await alertsOf('HA-S1')).length, 'the first alert', 30_000);
    await waitFor(async () => (await storedTs('HA-D0')).length > 100, 'readings flowing', 30_000);

    // --- PostgreSQL: SIGKILL the postmaster Patroni runs on the leader
    const leader = (await currentLeader(pgPorts))!;
    const postmaster = Number(readFileSync(join(stack().HA_DIR!, leader, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const sentBeforeKill = tag.sent;
    const t0 = Date.now();
    process.kill(postmaster, 'SIGKILL');
    // HAProxy may for a moment still send a new connection to a node that is not (yet) writable:
    // the standby Patroni has just taken the lock for, still finishing its promotion
    await waitFor(async () => {
      const probe = await connectThroughHaproxy(stack().PG_SUPERUSER_URL, 120_000);
      try {
        return (await probe.query<{ primary: boolean }>('SELECT NOT pg_is_in_recovery() AS primary')).rows[0]!.primary;
      } finally {
        await probe.end();
      }
    }, 'a writable primary through HAProxy', 120_000, 100);
    times.pg_haproxy_routes_to_new_primary_ms = Date.now() - t0;
    expect(await currentLeader(pgPorts)).not.toBe(leader);
    // the service itself: a reading published after the kill is stored
    const firstAfter = tag.tsOf(tag.sent);
    await waitFor(async () => (await within(10_000, 'readings query', db.pool.query(`SELECT 1 FROM readings WHERE device_id = 'HA-D0' AND ts >= $1`, [new Date(firstAfter)]))).rowCount, 'a reading stored after the failover', 120_000, 100);
    times.pg_service_stores_again_ms = Date.now() - t0;
    await fit('HA-S2', 'HA-D2');
    await tamper('HA-D2');
    await waitFor(async () => (await alertsOf('HA-S2')).length, 'an alert after the PostgreSQL failover', 120_000, 100);
    times.pg_alert_raised_after_kill_ms = Date.now() - t0;
    expect(sentBeforeKill).toBeGreaterThan(0);

    // --- Redis: SIGKILL the master the Sentinels name
    const master = await waitForMaster(redisPorts, 30_000);
    const t1 = Date.now();
    process.kill(Number(readFileSync(redisPidFile(stack().HA_DIR!, master), 'utf8').trim()), 'SIGKILL');
    const promoted = await waitForMaster(redisPorts, 60_000);
    expect(promoted).not.toBe(master);
    times.redis_sentinel_promotes_ms = Date.now() - t1;
    await fit('HA-S3', 'HA-D3');
    await tamper('HA-D3');
    await waitFor(async () => (await alertsOf('HA-S3')).length, 'an alert after the Redis failover', 120_000, 100);
    times.redis_alert_raised_after_kill_ms = Date.now() - t1;

    // --- the ground truth: every acknowledged reading stored exactly once, every alert once and streamed
    await within(30_000, 'the tag stopping', tag.stop());
    const acked = [...tag.acked].map(tag.tsOf);
    let stored: number[] = [];
    await waitFor(async () => {
      stored = await storedTs('HA-D0');
      const have = new Set(stored);
      return acked.every((t) => have.has(t));
    }, 'every acknowledged reading stored', 120_000, 250);
    expect(new Set(stored).size).toBe(stored.length);
    expect(stored.length).toBeGreaterThanOrEqual(acked.length);
    expect(stored.length).toBeLessThanOrEqual(tag.sent);
    for (const s of ['HA-S1', 'HA-S2', 'HA-S3']) expect((await alertsOf(s)).length, s).toBe(1);
    await waitFor(() => ['HA-S1', 'HA-S2', 'HA-S3'].every((s) => stream.events.some((e) => e.data.alert.subject_id === s && e.data.action === 'raised')), 'the three alerts on the stream', 60_000);
    const raised = stream.events.filter((e) => e.data.action === 'raised').map((e) => e.data.alert.id);
    expect(new Set(raised).size).toBe(raised.length);
    await within(10_000, 'the stream closing', stream.close());
    times.readings_acknowledged = acked.length;
    times.readings_published = tag.sent;
    times.publish_failures = tag.failed;
    console.log('HA recovery', JSON.stringify(times));
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { createTestDatabase, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { evaluateDeviceBatch } from '../../app/worker.part.js';
import { evaluateDeviceGeofence } from '../../geofence/evaluate.job.js';
import { paramsFrom } from '../../alcohol/params.js';
import { createDeviceReadingsQueue, restoreDirty, type DirtyDevices } from '../../signals/queues.js';

/**
 * The batched evaluation path: many devices per job and transaction must decide exactly what
 * evaluating them one by one decides, a device that cannot be evaluated must not hold up the
 * others, and a batch that dies half-way and is retried must not alert twice.
 */

type Db = Awaited<ReturnType<typeof createTestDatabase>>;
const dbs: Db[] = [];
const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };
const T0 = Date.now() - 30 * 60_000;
const ZONE = { type: 'Point', coordinates: [-1.15, 52.95] };

const deps = (pool: Pool) => ({ pool, logger: createLogger('silent'), metrics: createMetrics(), alcoholParams: paramsFrom(undefined) });

/** Subjects S0..Sn-1 with devices D0..Dn-1, one exclusion zone each (fixed ids, the same in every database). */
async function seed(pool: Pool, run: string, n: number, zoneIds: string[]) {
  const s = Array.from({ length: n }, (_, i) => `${run}-S${i}`);
  const d = Array.from({ length: n }, (_, i) => `${run}-D${i}`);
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT x, x, 'fixed', 'red', ARRAY['om-1'] FROM unnest($1::text[]) x`, [s]);
  await pool.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'gps'`, [d]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT s, d, now() - interval '1 day' FROM unnest($1::text[], $2::text[]) t(s, d)`, [s, d]);
  await pool.query(
    `INSERT INTO zones (id, subject_id, kind, name, geometry, radius_m, grace_s, created_by, created_at)
     SELECT z, s, 'exclusion', 'victim', $3::jsonb, 300, 60, 'test', now() - interval '1 day' FROM unnest($1::uuid[], $2::text[]) t(z, s)`,
    [zoneIds, s, JSON.stringify(ZONE)],
  );
  return d;
}

/** Stores fixes every 30 s from `from` for a device (as ingest would, received now). */
async function fixes(pool: Pool, device: string, from: number, points: Array<{ lat: number; lon: number }>) {
  const ts = points.map((_, i) => new Date(from + i * 30_000).toISOString());
  await pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', t, lat, lon, 10, jsonb_build_object('lat', lat, 'lon', lon, 'accuracy_m', 10) FROM unnest($2::timestamptz[], $3::float8[], $4::float8[]) x(t, lat, lon)`,
    [device, ts, points.map((p) => p.lat), points.map((p) => p.lon)],
  );
  return ts;
}

const BREACH = [OUT, IN, IN, IN, IN, OUT, OUT, OUT, IN, IN];
const PASS = [OUT, IN, OUT, OUT];
const AWAY = [OUT, OUT, OUT];

async function scenario(pool: Pool, run: string, zoneIds: string[]) {
  const d = await seed(pool, run, 6, zoneIds);
  await fixes(pool, d[0]!, T0, BREACH); // a breach that ends, then a run under way
  await fixes(pool, d[1]!, T0, PASS); // one inside fix: a run that clears (idle state)
  await fixes(pool, d[2]!, T0, AWAY);
  await fixes(pool, d[3]!, T0, BREACH);
  await fixes(pool, d[4]!, T0 + 60_000, BREACH);
  // D5 is fitted to S0 later in the day: the subject's fixes come from two devices of the batch
  await pool.query(`UPDATE assignments SET end_at = $1 WHERE device_id = $2`, [new Date(T0 + 20 * 60_000), d[5]!]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, $3)`, [`${run}-S0`, d[5]!, new Date(T0 + 20 * 60_000)]);
  await pool.query(`UPDATE assignments SET end_at = $1 WHERE device_id = $2`, [new Date(T0 + 20 * 60_000), d[0]!]);
  await fixes(pool, d[5]!, T0 + 21 * 60_000, [IN, IN, IN, OUT, OUT, OUT, OUT]);
  return d;
}

async function outcome(pool: Pool) {
  const alerts = await pool.query(
    `SELECT subject_id, device_id, type, zone_id, started_at, ended_at, late, evidence FROM alerts ORDER BY subject_id, started_at, type`,
  );
  const states = await pool.query(`SELECT subject_id, zone_id, state FROM zone_states ORDER BY subject_id, zone_id`);
  const progress = await pool.query(`SELECT device_id, watermark FROM geofence_progress ORDER BY device_id`);
  return { alerts: alerts.rows, states: states.rows, progress: progress.rows };
}

const marksOf = (devices: string[], from: number): DirtyDevices => new Map(devices.map((d) => [d, { gps: from }]));

let svc: TestService | null = null;

beforeAll(async () => {
  for (let i = 0; i < 3; i++) dbs.push(await createTestDatabase());
});

afterAll(async () => {
  await svc?.stop();
  for (const db of dbs) await db.drop();
});

describe('batched evaluation', () => {
  it('several devices in one job decide exactly what one-by-one evaluation decides, and write only states under way', async () => {
    const zoneIds = Array.from({ length: 6 }, () => randomUUID());
    const [a, b] = [dbs[0]!.pool, dbs[1]!.pool];
    const devices = await scenario(a, 'B', zoneIds);
    await scenario(b, 'B', zoneIds);

    const batch = await evaluateDeviceBatch(deps(a), devices, marksOf(devices, T0), false, Date.now());
    expect(batch.failed).toEqual(new Map());
    expect(batch.fixes).toBe(10 + 4 + 3 + 10 + 10 + 7);
    for (const d of devices) await evaluateDeviceGeofence(deps(b), d, T0);

    const [x, y] = [await outcome(a), await outcome(b)];
    expect(x.alerts).toEqual(y.alerts);
    expect(x.progress).toEqual(y.progress);
    // S0's second breach (its run began on D0 and was proven on D5) is a recurrence of the open alert
    // late: the fixes were written now with device times 30 minutes ago (received late)
    expect(x.alerts.map((r) => [r.subject_id, r.type, r.started_at.getTime(), r.ended_at !== null, r.late])).toEqual([
      ['B-S0', 'exclusion_breach', T0 + 30_000, true, true],
      ['B-S3', 'exclusion_breach', T0 + 30_000, true, true],
      ['B-S4', 'exclusion_breach', T0 + 90_000, true, true],
    ]);
    const recurred = await a.query(`SELECT e.note FROM alert_events e JOIN alerts x ON x.id = e.alert_id WHERE x.subject_id = 'B-S0' AND e.action = 'recurred'`);
    expect(recurred.rows).toHaveLength(1);
    // only the states under way are stored (the runs that end S3's and S4's tracks), not the idle ones
    expect(x.states.map((s) => [s.subject_id, s.state.runStart])).toEqual([
      ['B-S3', T0 + 8 * 30_000],
      ['B-S4', T0 + 60_000 + 8 * 30_000],
    ]);
    expect(x.states).toEqual(y.states);

    // evaluating the batch again (a retry) finds nothing new
    const again = await evaluateDeviceBatch(deps(a), devices, marksOf(devices, T0), true, Date.now());
    expect([again.alerts, again.failed.size]).toEqual([0, 0]);
    expect(await outcome(a)).toEqual(x);
  });

  it('a device that cannot be evaluated fails alone; the others are evaluated', async () => {
    const pool = dbs[2]!.pool;
    const devices = await seed(pool, 'P', 3, [randomUUID(), randomUUID(), randomUUID()]);
    for (const d of devices) await fixes(pool, d, T0, BREACH);
    // a zone row the core cannot read (written past the API's validation)
    await pool.query(`UPDATE zones SET geometry = '{"type":"Polygon","coordinates":null}' WHERE subject_id = 'P-S1'`);
    const r = await evaluateDeviceBatch(deps(pool), devices, marksOf(devices, T0), false, Date.now());
    expect([...r.failed.keys()]).toEqual(['P-D1']);
    const alerts = await pool.query(`SELECT subject_id FROM alerts WHERE type = 'exclusion_breach' ORDER BY subject_id`);
    expect(alerts.rows.map((x) => x.subject_id)).toEqual(['P-S0', 'P-S2']);
    const progress = await pool.query(`SELECT device_id FROM geofence_progress ORDER BY device_id`);
    expect(progress.rows.map((x) => x.device_id)).toEqual(['P-D0', 'P-D2']);
    const health = await pool.query(`SELECT device_id FROM device_health ORDER BY device_id`);
    expect(health.rows.map((x) => x.device_id)).toEqual(['P-D0', 'P-D2']);
  });

  it('a batch that dies mid-transaction and is retried raises every alert once', async () => {
    const pool = dbs[2]!.pool;
    const devices = await seed(pool, 'C', 4, [randomUUID(), randomUUID(), randomUUID(), randomUUID()]);
    for (const d of devices) await fixes(pool, d, T0, BREACH);
    // the connection dies after the alerts of the batch are written, before the watermarks
    let deaths = 0;
    const dying = new Proxy(pool, {
      get(target, prop) {
        if (prop !== 'connect') return Reflect.get(target, prop);
        return async () => {
          const client = await target.connect();
          const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
          return new Proxy(client, {
            get(c, p) {
              if (p !== 'query') return Reflect.get(c, p);
              return (...args: unknown[]) => {
                if (deaths < 2 && typeof args[0] === 'string' && args[0].includes('INSERT INTO geofence_progress')) {
                  deaths++;
                  return Promise.reject(new Error('connection terminated'));
                }
                return query(...args);
              };
            },
          });
        };
      },
    }) as Pool;
    const first = await evaluateDeviceBatch(deps(dying), devices, marksOf(devices, T0), false, Date.now());
    // the batch and the first device alone died: that device fails (and is retried), the others went through
    expect([...first.failed.keys()]).toEqual(['C-D0']);
    expect(first.alerts).toBe(3);
    const retry = await evaluateDeviceBatch(deps(pool), devices, new Map([['C-D0', { gps: T0 }]]), true, Date.now());
    expect(retry.failed.size).toBe(0);
    expect(retry.alerts).toBe(1);
    const alerts = await pool.query(`SELECT subject_id, count(*)::int n FROM alerts WHERE type = 'exclusion_breach' AND subject_id LIKE 'C-%' GROUP BY subject_id ORDER BY subject_id`);
    expect(alerts.rows).toEqual(['C-S0', 'C-S1', 'C-S2', 'C-S3'].map((subject_id) => ({ subject_id, n: 1 })));
    // late readings of all four arrive and the whole batch is replayed: nothing is raised again
    const late = await evaluateDeviceBatch(deps(pool), devices, marksOf(devices, T0 - 60_000), false, Date.now());
    expect([late.alerts, late.failed.size]).toEqual([0, 0]);
  });

  it('the worker retries only the devices of a job that failed', async () => {
    const db = dbs[2]!;
    const devices = await seed(db.pool, 'W', 2, [randomUUID(), randomUUID()]);
    for (const d of devices) await fixes(db.pool, d, T0, BREACH);
    await db.pool.query(`UPDATE zones SET geometry = '{"type":"Polygon","coordinates":null}' WHERE subject_id = 'W-S1'`);
    svc = await startTestService(testConfig({ DATABASE_URL: db.url }), { worker: true });
    const prefix = svc.rt.config.QUEUE_PREFIX;
    const queue = createDeviceReadingsQueue(svc.rt.redis, prefix);
    await restoreDirty(svc.rt.redis, prefix, marksOf(devices, T0));
    const job = await queue.add('evaluate', { devices, sweep: true }, { attempts: 3, backoff: { type: 'fixed', delay: 200 } });
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM alerts WHERE subject_id = 'W-S0' AND type = 'exclusion_breach'`)).rowCount, 'the good device alerted');
    const failed = await waitFor(async () => {
      const j = await queue.getJob(job.id!);
      return (await j?.isFailed()) ? j : null;
    }, 'the job to fail for good');
    expect(failed!.data.devices).toEqual(['W-D1']);
    expect(failed!.attemptsMade).toBe(3);
    // its marks are kept for the sweep
    await waitFor(async () => (await svc!.rt.redis.hget(`${prefix}:device-dirty`, 'W-D1|gps')) === String(T0), 'the failed device keeps its marks');
    expect(await db.pool.query(`SELECT count(*)::int n FROM alerts WHERE subject_id LIKE 'W-%' AND type = 'exclusion_breach'`)).toMatchObject({ rows: [{ n: 1 }] });
    await queue.close();
  });
});

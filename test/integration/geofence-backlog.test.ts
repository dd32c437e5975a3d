import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { createTestDatabase } from '../support/env.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { evaluateDeviceBatch } from '../../evaluation/device-batch.js';
import { paramsFrom } from '../../alcohol/params.js';

/**
 * Issue 9, finding 1: a device with a backlog longer than one evaluation chunk is evaluated in
 * chunks, in device-time order, with the breach states carried from chunk to chunk and the
 * watermark advanced as each chunk commits.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };
const ZONE = { type: 'Point', coordinates: [-1.15, 52.95] };

const deps = (pool: Pool, chunk?: number) => ({ pool, logger: createLogger('silent'), metrics: createMetrics(), alcoholParams: paramsFrom(undefined), ...(chunk ? { chunk } : {}) });

async function seed(pool: Pool, run: string, graceS: number) {
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY['om-1'])`, [`${run}-S`]);
  await pool.query(`INSERT INTO devices (id, kind) VALUES ($1, 'gps')`, [`${run}-D`]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, now() - interval '10 days')`, [`${run}-S`, `${run}-D`]);
  await pool.query(
    `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, grace_s, created_by, created_at) VALUES ($1, 'exclusion', 'victim', $2::jsonb, 300, $3, 'test', now() - interval '10 days')`,
    [`${run}-S`, JSON.stringify(ZONE), graceS],
  );
  return `${run}-D`;
}

/** `n` fixes every `stepMs` from `from` straight into readings (SQL-generated: fast), outside the zone unless `inside(i)`. */
async function bulkFixes(pool: Pool, device: string, from: number, n: number, stepMs: number, insideEvery = 0) {
  await pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', to_timestamp(($2::float8 + i * $4::float8) / 1000), p.lat, p.lon, 10, jsonb_build_object('lat', p.lat, 'lon', p.lon, 'accuracy_m', 10)
       FROM generate_series(0, $3::int - 1) i
       CROSS JOIN LATERAL (SELECT CASE WHEN $5::int > 0 AND i % $5::int = $5::int - 1 THEN $6::float8 ELSE $8::float8 END lat,
                                  CASE WHEN $5::int > 0 AND i % $5::int = $5::int - 1 THEN $7::float8 ELSE $9::float8 END lon) p`,
    [device, from, n, stepMs, insideEvery, IN.lat, IN.lon, OUT.lat, OUT.lon],
  );
  return from + (n - 1) * stepMs;
}

async function reading(pool: Pool, device: string, stream: 'gps' | 'status', ts: number, data: Record<string, unknown>) {
  await pool.query(`INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    device,
    stream,
    new Date(ts),
    data.lat ?? null,
    data.lon ?? null,
    data.accuracy_m ?? null,
    JSON.stringify(data),
  ]);
}

const watermarkOf = async (pool: Pool, device: string) =>
  ((await pool.query(`SELECT watermark FROM geofence_progress WHERE device_id = $1`, [device])).rows[0]?.watermark as Date | undefined)?.getTime() ?? null;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe('a backlog longer than one chunk', () => {
  it('50,000 pending fixes, then a fix in the zone and strap: open: the breach and strap_tamper are raised, the watermark reaches the last fix', async () => {
    const pool = db.pool;
    const device = await seed(pool, 'L', 0);
    const t0 = Date.now() - 3 * 86400_000;
    const lastBulk = await bulkFixes(pool, device, t0, 50_000, 2_000);
    const fixTs = lastBulk + 30_000;
    await reading(pool, device, 'gps', fixTs, { ...IN, accuracy_m: 10 });
    await reading(pool, device, 'status', fixTs + 1_000, { strap: 'open' });
    const r = await evaluateDeviceBatch(deps(pool), [device], new Map([[device, { gps: t0, status: fixTs + 1_000 }]]), false, Date.now());
    expect([...r.failed].map(([d, e]) => `${d}: ${e.message}`)).toEqual([]);
    expect(r.fixes).toBe(50_001);
    const alerts = await pool.query(`SELECT type, started_at FROM alerts WHERE subject_id = 'L-S' ORDER BY type`);
    expect(alerts.rows.map((a) => [a.type, a.started_at.getTime()])).toEqual([
      ['exclusion_breach', fixTs],
      ['strap_tamper', fixTs + 1_000],
    ]);
    expect(await watermarkOf(pool, device)).toBe(fixTs);
  });

  it('chunked evaluation decides what one chunk decides, and a crash mid-backlog resumes without alerting twice', async () => {
    const pool = db.pool;
    const t0 = Date.now() - 2 * 86400_000;
    // one inside fix in every 7 (grace 0: each is a breach, ended by the outside fixes after it)
    const [whole, chunked] = [await seed(pool, 'W', 0), await seed(pool, 'K', 0)];
    const last = await bulkFixes(pool, whole, t0, 500, 30_000, 7);
    await bulkFixes(pool, chunked, t0, 500, 30_000, 7);
    const one = await evaluateDeviceBatch(deps(pool, 1000), [whole], new Map([[whole, { gps: t0 }]]), false, Date.now());
    expect(one.failed.size).toBe(0);

    // the chunked device dies when its third chunk's watermark is written
    const dying = dyingAtThirdWatermark(pool);
    const crashed = await evaluateDeviceBatch(deps(dying, 90), [chunked], new Map([[chunked, { gps: t0 }]]), false, Date.now());
    expect([...crashed.failed.keys()]).toEqual([chunked]);
    // two chunks of 90 committed
    expect(await watermarkOf(pool, chunked)).toBe(t0 + 179 * 30_000);
    // the retry (a sweep, as the worker's second attempt) resumes after the watermark
    const retry = await evaluateDeviceBatch(deps(pool, 90), [chunked], new Map(), true, Date.now());
    expect(retry.failed.size).toBe(0);
    expect(await watermarkOf(pool, chunked)).toBe(last);
    expect(await watermarkOf(pool, whole)).toBe(last);

    const outcome = async (s: string) =>
      (await pool.query(`SELECT type, started_at, ended_at, late FROM alerts WHERE subject_id = $1 AND type = 'exclusion_breach' ORDER BY started_at`, [s])).rows;
    const [a, b] = [await outcome('W-S'), await outcome('K-S')];
    // one alert (the first breach); every later breach recurs on it while it is open
    expect(a.map((x) => x.started_at.getTime())).toEqual([t0 + 6 * 30_000]);
    expect(b).toEqual(a);
    const events = async (s: string) =>
      (await pool.query(`SELECT e.action, e.note FROM alert_events e JOIN alerts x ON x.id = e.alert_id WHERE x.subject_id = $1 ORDER BY e.at, e.id`, [s])).rows;
    const [ea, eb] = [await events('W-S'), await events('K-S')];
    expect(ea.filter((e) => e.action === 'recurred')).toHaveLength(Math.floor(500 / 7) - 1);
    expect(eb).toEqual(ea);
  });

  it('a replay longer than a chunk, crashed half-way and resumed by a sweep, decides what one replay decides', async () => {
    const pool = db.pool;
    const t0 = Date.now() - 86400_000;
    const [whole, chunked] = [await seed(pool, 'RW', 0), await seed(pool, 'RK', 0)];
    for (const d of [whole, chunked]) {
      await bulkFixes(pool, d, t0, 400, 30_000, 9);
      expect((await evaluateDeviceBatch(deps(pool, 1000), [d], new Map([[d, { gps: t0 }]]), false, Date.now())).failed.size).toBe(0);
      await pool.query(`UPDATE alerts SET status = 'resolved' WHERE device_id = $1`, [d]);
      // late readings: inside fixes between the stored ones, an hour before the watermark
      await bulkFixes(pool, d, t0 + 280 * 30_000 + 15_000, 5, 30_000, 1);
    }
    const late = t0 + 280 * 30_000 + 15_000;
    const one = await evaluateDeviceBatch(deps(pool, 1000), [whole], new Map([[whole, { gps: late }]]), false, Date.now());
    expect(one.failed.size).toBe(0);
    const dying = dyingAtThirdWatermark(pool);
    const crashed = await evaluateDeviceBatch(deps(dying, 40), [chunked], new Map([[chunked, { gps: late }]]), false, Date.now());
    expect([...crashed.failed.keys()]).toEqual([chunked]);
    const mid = (await pool.query(`SELECT replay_from, replay_cursor FROM geofence_progress WHERE device_id = $1`, [chunked])).rows[0];
    expect([mid.replay_from.getTime(), mid.replay_cursor.getTime()]).toEqual([late - 6 * 3600_000, t0 + 79 * 30_000]);
    // the marks were lost with the crash: the sweep goes on with the replay under way
    expect((await evaluateDeviceBatch(deps(pool, 40), [chunked], new Map(), true, Date.now())).failed.size).toBe(0);
    const rows = async (s: string) => ({
      alerts: (await pool.query(`SELECT type, started_at, ended_at, late, status FROM alerts WHERE subject_id = $1 ORDER BY started_at`, [s])).rows,
      events: (await pool.query(`SELECT e.action, e.note FROM alert_events e JOIN alerts x ON x.id = e.alert_id WHERE x.subject_id = $1 ORDER BY e.at, e.id`, [s])).rows,
      states: (await pool.query(`SELECT state FROM zone_states WHERE subject_id = $1`, [s])).rows,
      progress: (await pool.query(`SELECT watermark, replay_from, replay_cursor FROM geofence_progress WHERE device_id = $1`, [`${s.slice(0, -2)}-D`])).rows,
    });
    const [a, b] = [await rows('RW-S'), await rows('RK-S')];
    // the late visit is found: an alert or a recurrence of the open one
    const iso = new Date(late).toISOString();
    expect([...a.alerts.map((x) => x.started_at.toISOString()), ...a.events.map((e) => e.note ?? '')].filter((t) => t.includes(iso))).toHaveLength(1);
    expect(a.progress[0].replay_cursor).toBeNull();
    expect(b).toEqual(a);
  });
});

/** A pool whose connections fail the third write of a geofence watermark (a crash mid-backlog). */
function dyingAtThirdWatermark(pool: Pool): Pool {
  let writes = 0;
  return new Proxy(pool, {
    get(target, prop) {
      if (prop !== 'connect') return Reflect.get(target, prop);
      return async () => {
        const client = await target.connect();
        const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
        return new Proxy(client, {
          get(c, p) {
            if (p !== 'query') return Reflect.get(c, p);
            return (...args: unknown[]) => {
              if (typeof args[0] === 'string' && args[0].includes('INSERT INTO geofence_progress') && ++writes === 3) return Promise.reject(new Error('connection terminated'));
              return query(...args);
            };
          },
        });
      };
    },
  }) as Pool;
}

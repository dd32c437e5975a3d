import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { createTestDatabase } from '../support/env.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { evaluateDeviceGeofence, evaluateDevicesGeofence, type GeofenceDeps } from '../../geofence/evaluate.job.js';

/**
 * Dirty marks that reach a job after an earlier job already read their fixes. Ingest sets a
 * device's mark (the earliest device time of a commit) after the commit, so a job that reads
 * after a later commit evaluates fixes whose mark is still on its way: that mark, when it
 * arrives, is covered and must not start a 6-hour replay, nor make an alert `late`. A fix that
 * truly arrives late (after the read of its device-time range) is still replayed.
 */

const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };
const ZONE = { type: 'Point', coordinates: [-1.15, 52.95] };
// device times 5 minutes ago: received now, within the 15 minutes that would make them late by receipt
const T0 = Date.now() - 5 * 60_000;
const S = 30_000;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: Pool;
const deps = (chunk?: number): GeofenceDeps => ({ pool, logger: createLogger('silent'), metrics: createMetrics(), ...(chunk ? { chunk } : {}) });

/** A subject fitted with a device since yesterday, with one exclusion zone (grace 60 s). */
async function fitted(name: string): Promise<string> {
  const [s, d] = [`${name}-S`, `${name}-D`];
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY['om-1'])`, [s]);
  await pool.query(`INSERT INTO devices (id, kind) VALUES ($1, 'gps')`, [d]);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, now() - interval '1 day')`, [s, d]);
  await pool.query(
    `INSERT INTO zones (id, subject_id, kind, name, geometry, radius_m, grace_s, created_by, created_at)
     VALUES ($1, $2, 'exclusion', 'victim', $3::jsonb, 300, 60, 'test', now() - interval '1 day')`,
    [randomUUID(), s, JSON.stringify(ZONE)],
  );
  return d;
}

/** Commits one ingest batch: fixes at the given device times (ms), received now. */
async function commit(device: string, fixes: Array<[number, { lat: number; lon: number }]>) {
  await pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', t, lat, lon, 10, jsonb_build_object('lat', lat, 'lon', lon, 'accuracy_m', 10) FROM unnest($2::timestamptz[], $3::float8[], $4::float8[]) x(t, lat, lon)`,
    [device, fixes.map(([t]) => new Date(t)), fixes.map(([, p]) => p.lat), fixes.map(([, p]) => p.lon)],
  );
}

async function alertsOf(device: string) {
  const r = await pool.query(`SELECT type, started_at, late FROM alerts WHERE device_id = $1 ORDER BY started_at`, [device]);
  return r.rows.map((x) => ({ type: x.type, started_at: x.started_at.getTime(), late: x.late }));
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = db.pool;
});

afterAll(async () => {
  await db?.drop();
});

describe('dirty marks covered by an earlier read', () => {
  it('a mark for fixes a previous round already read (committed before it read) starts no replay', async () => {
    const d = await fitted('C1');
    await commit(d, [[T0, OUT]]); // batch 1: its mark (T0) is taken by job A
    await commit(d, [[T0 + S, OUT]]); // batch 2 commits before job A reads
    expect(await evaluateDeviceGeofence(deps(), d, T0)).toMatchObject({ fixes: 2, replayed: false });
    // batch 2's mark (T0 + 30 s) reaches job B: its fix has been evaluated
    expect(await evaluateDeviceGeofence(deps(), d, T0 + S)).toMatchObject({ fixes: 0, replayed: false });
    // new fixes after it go on from the watermark as usual
    await commit(d, [[T0 + 2 * S, OUT]]);
    expect(await evaluateDeviceGeofence(deps(), d, T0 + 2 * S)).toMatchObject({ fixes: 1, replayed: false });
  });

  it('a fix that truly arrives late in the range of the last read is replayed', async () => {
    const d = await fitted('C2');
    await commit(d, [[T0, OUT]]);
    await commit(d, [[T0 + 2 * S, OUT]]);
    expect(await evaluateDeviceGeofence(deps(), d, T0)).toMatchObject({ fixes: 2, replayed: false });
    // a fix between the two, committed after the read
    await commit(d, [[T0 + S, OUT]]);
    expect(await evaluateDeviceGeofence(deps(), d, T0 + S)).toMatchObject({ fixes: 3, replayed: true });
    // after a replay nothing is known of the range read: a mark at or before the watermark replays
    expect(await evaluateDeviceGeofence(deps(), d, T0 + 2 * S)).toMatchObject({ replayed: true });
    // a mark at or before where the last live read started replays too
    await commit(d, [[T0 + 3 * S, OUT]]);
    expect(await evaluateDeviceGeofence(deps(), d, T0 + 3 * S)).toMatchObject({ fixes: 1, replayed: false });
    expect(await evaluateDeviceGeofence(deps(), d, T0 + 2 * S)).toMatchObject({ replayed: true });
  });

  it('a breach proven in the covered range is raised once, not late', async () => {
    const d = await fitted('C3');
    await commit(d, [[T0, OUT], [T0 + S, IN]]);
    await commit(d, [[T0 + 2 * S, IN], [T0 + 3 * S, IN]]); // proves the breach (60 s inside)
    const a = await evaluateDeviceGeofence(deps(), d, T0);
    expect(a.raised.map((x) => [x.type, x.late])).toEqual([['exclusion_breach', false]]);
    const b = await evaluateDeviceGeofence(deps(), d, T0 + 2 * S);
    expect([b.replayed, b.raised]).toEqual([false, []]);
    expect(await alertsOf(d)).toEqual([{ type: 'exclusion_breach', started_at: T0 + S, late: false }]);
  });

  it('the first evaluation of a device reads the fixes committed before its mark: a later job for the earlier mark finds them covered', async () => {
    const d = await fitted('C4');
    await commit(d, [[T0, OUT], [T0 + S, IN], [T0 + 2 * S, IN]]); // batch 1: its mark goes to job A
    await commit(d, [[T0 + 3 * S, IN], [T0 + 4 * S, IN]]); // batch 2: its mark goes to job B
    // job B takes the device's lock first
    const b = await evaluateDeviceGeofence(deps(), d, T0 + 3 * S);
    const a = await evaluateDeviceGeofence(deps(), d, T0);
    expect(await alertsOf(d)).toEqual([{ type: 'exclusion_breach', started_at: T0 + S, late: false }]);
    expect(b).toMatchObject({ fixes: 5, replayed: false });
    expect([a.replayed, a.raised]).toEqual([false, []]);
  });

  it('a live read over several chunks covers the marks of all its fixes', async () => {
    const d = await fitted('C5');
    await commit(d, [[T0, OUT]]);
    await commit(d, [[T0 + S, OUT], [T0 + 2 * S, OUT]]);
    await commit(d, [[T0 + 3 * S, OUT], [T0 + 4 * S, OUT]]);
    expect(await evaluateDeviceGeofence(deps(2), d, T0)).toMatchObject({ fixes: 5, replayed: false });
    expect(await evaluateDeviceGeofence(deps(2), d, T0 + S)).toMatchObject({ fixes: 0, replayed: false });
    expect(await evaluateDeviceGeofence(deps(2), d, T0 + 3 * S)).toMatchObject({ fixes: 0, replayed: false });
  });

  it('decides covered and late marks of many devices in one round', async () => {
    const [covered, late, fresh] = [await fitted('M1'), await fitted('M2'), await fitted('M3')];
    for (const d of [covered, late]) {
      await commit(d, [[T0, OUT]]);
      await commit(d, [[T0 + 2 * S, OUT]]);
      await evaluateDeviceGeofence(deps(), d, T0);
    }
    await commit(late, [[T0 + S, OUT]]);
    await commit(fresh, [[T0, OUT]]);
    const r = await evaluateDevicesGeofence(deps(), [
      { deviceId: covered, dirtyFrom: T0 + 2 * S },
      { deviceId: late, dirtyFrom: T0 + S },
      { deviceId: fresh, dirtyFrom: T0 },
    ]);
    expect(r.failed.size).toBe(0);
    expect([covered, late, fresh].map((d) => [r.devices.get(d)!.replayed, r.devices.get(d)!.fixes])).toEqual([
      [false, 0],
      [true, 3],
      [false, 1],
    ]);
  });
});

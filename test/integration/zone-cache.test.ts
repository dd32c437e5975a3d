import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/env.js';
import { loadRulesOf } from '../../geofence/zones.repo.js';
import { ZoneCache } from '../../geofence/zone-cache.js';

/**
 * Issue 14 §5: prepared zones are cached by zone id and row version. A cached rule is reused only
 * while its row is unchanged: an edit, a deletion or a change of the subject's time zone is seen
 * on the next load.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;

const circle = (lon: number, lat: number, r: number) => [JSON.stringify({ type: 'Point', coordinates: [lon, lat] }), r];

beforeAll(async () => {
  db = await createTestDatabase();
  for (const id of ['C-S1', 'C-S2']) await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY['om-1'])`, [id]);
  for (const [s, lon] of [['C-S1', -1.15], ['C-S1', -1.16], ['C-S2', -1.17]] as const) {
    await db.pool.query(`INSERT INTO zones (subject_id, kind, name, geometry, radius_m, exceptions, grace_s, created_by) VALUES ($1, 'exclusion', 'z', $2, $3, '[]', 60, 'om-1')`, [s, ...circle(lon, 52.95, 100)]);
  }
});

afterAll(async () => {
  await db?.drop();
});

describe('the zone cache (by id and row version)', () => {
  it('gives the same prepared rules while nothing changed, and reads no zone twice', async () => {
    const cache = new ZoneCache();
    const a = await loadRulesOf(db.pool, ['C-S1', 'C-S2'], cache);
    expect([cache.hits, cache.misses]).toEqual([0, 3]);
    const b = await loadRulesOf(db.pool, ['C-S1', 'C-S2'], cache);
    expect([cache.hits, cache.misses]).toEqual([3, 3]);
    expect(b.get('C-S1')![0]).toBe(a.get('C-S1')![0]);
    expect(b.get('C-S1')!.map((r) => r.id)).toEqual(a.get('C-S1')!.map((r) => r.id));
    // the prepared R-tree is reused for the same rule objects, rebuilt for others
    expect(cache.prepare('C-S1', b.get('C-S1')!)).toBe(cache.prepare('C-S1', a.get('C-S1')!));
  });

  it('sees an edited zone, a deleted zone and a new time zone on the next load', async () => {
    const cache = new ZoneCache();
    const before = await loadRulesOf(db.pool, ['C-S1'], cache);
    const [first, second] = before.get('C-S1')!;
    const prepared = cache.prepare('C-S1', before.get('C-S1')!);
    await db.pool.query(`UPDATE zones SET radius_m = 250 WHERE id = $1`, [first!.id]);
    const edited = await loadRulesOf(db.pool, ['C-S1'], cache);
    expect(edited.get('C-S1')![0]!.shape.radius_m).toBe(250);
    expect(edited.get('C-S1')![1]).toBe(second);
    expect(cache.prepare('C-S1', edited.get('C-S1')!)).not.toBe(prepared);

    await db.pool.query(`UPDATE zones SET deleted_at = now() WHERE id = $1`, [second!.id]);
    expect((await loadRulesOf(db.pool, ['C-S1'], cache)).get('C-S1')!.map((r) => r.id)).toEqual([first!.id]);

    await db.pool.query(`UPDATE subjects SET timezone = 'America/New_York' WHERE id = 'C-S1'`);
    expect((await loadRulesOf(db.pool, ['C-S1'], cache)).get('C-S1')![0]!.timezone).toBe('America/New_York');
  });

  it('a subject with 10,000 zones: the second load reads no geometry (timings printed)', async () => {
    await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('C-BIG', 'big', 'fixed', 'red', ARRAY['om-1'])`);
    await db.pool.query(
      `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, exceptions, grace_s, created_by)
       SELECT 'C-BIG', 'exclusion', 'z' || i,
              jsonb_build_object('type', 'Polygon', 'coordinates', jsonb_build_array(jsonb_build_array(
                jsonb_build_array(-1.2 + i * 1e-5, 52.9), jsonb_build_array(-1.19 + i * 1e-5, 52.9), jsonb_build_array(-1.19 + i * 1e-5, 52.91), jsonb_build_array(-1.2 + i * 1e-5, 52.9)))),
              NULL, '[]', 60, 'om-1'
         FROM generate_series(1, 10000) i`,
    );
    const cache = new ZoneCache();
    let t = performance.now();
    const cold = await loadRulesOf(db.pool, ['C-BIG'], cache);
    const coldMs = performance.now() - t;
    t = performance.now();
    const warm = await loadRulesOf(db.pool, ['C-BIG'], cache);
    const warmMs = performance.now() - t;
    expect(cold.get('C-BIG')!.length).toBe(10_000);
    expect(warm.get('C-BIG')!.every((r, i) => r === cold.get('C-BIG')![i])).toBe(true);
    expect(cache.misses).toBe(10_000);
    console.log(`zone cache, 10,000 zones of one subject: cold load ${coldMs.toFixed(0)} ms, warm load ${warmMs.toFixed(0)} ms`);
  });
});

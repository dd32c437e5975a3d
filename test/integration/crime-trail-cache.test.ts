import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase } from '../support/env.js';
import { compactGpsHourLog, TrailCache } from '../../crime/trail-cache.js';
import { loadTrails } from '../../crime/trails.repo.js';
import { indexTrails, matchCrimes, type MatchCrime } from '../../crime/match.js';
import { DEFAULT_CRIME_PARAMS } from '../../crime/rules.js';
import { runCrimeMatch } from '../../crime/match.job.js';
import { insertBatch, insertRun } from '../../crime/crime.repo.js';

/**
 * The crime worker's resident trails (crime/trail-cache.ts) against the plain path (load from the
 * database, index, match): the same matches, deciding fixes, coverage and receipt time whenever
 * the cache serves a window, and never served when a reading, a fitting or a deletion it has not
 * seen touches the window — late readings, a reading committed during the load, a window outside
 * the resident period.
 */

const H = 3_600_000;
const MIN = 60_000;
const NOW = Math.floor(Date.now() / H) * H - 2 * H; // a whole hour, so the windows' hours are known
const T0 = NOW - 10 * H;
const P = DEFAULT_CRIME_PARAMS;
const HOME = { lat: 52.95, lon: -1.15 };
const M_PER_DEG = 111_195;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: pg.Pool;

const cache = () => new TrailCache({ hours: 12, retentionDays: 2190, now: () => NOW });

async function insertFixes(rows: { device: string; ts: number; lat: number; lon: number; acc: number }[]) {
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data)
     SELECT d, 'gps', t, la, lo, a, '{}' FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[]) AS u(d, t, la, lo, a)`,
    [rows.map((r) => r.device), rows.map((r) => new Date(r.ts)), rows.map((r) => r.lat), rows.map((r) => r.lon), rows.map((r) => r.acc)],
  );
}

/** Subject s walks east from HOME at 1 m/s, one fix every 2 minutes; 'c' has a 40-minute silence; 'b' wears two devices. */
function trail(s: string, device: string, offsetM: number, skip?: [number, number]) {
  const out = [];
  for (let t = T0; t <= NOW; t += 2 * MIN) {
    if (skip && t > skip[0] && t < skip[1]) continue;
    const x = offsetM + (t - T0) / 1000;
    out.push({ device, ts: t + (s === 'b' && device.endsWith('2') ? 30_000 : 0), lat: HOME.lat + ((offsetM / 7) % 500) / M_PER_DEG, lon: HOME.lon + (x % 3000) / (M_PER_DEG * 0.6), acc: 10 + ((t / MIN) % 7) * 12 });
  }
  return out;
}

const crimes: MatchCrime[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
  await db.pool.query(`INSERT INTO devices (id, kind, active) VALUES ('d-a', 'gps', true), ('d-b1', 'gps', true), ('d-b2', 'combined', true), ('d-c', 'gps', true), ('d-al', 'alcohol', true)`);
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT x, 'S ' || x, 'fixed', 'amber', ARRAY['om-1'] FROM unnest(ARRAY['a', 'b', 'c']) x`);
  await db.pool.query(
    `INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('a', 'd-a', $1), ('b', 'd-b1', $1), ('b', 'd-b2', $1), ('c', 'd-c', $1), ('c', 'd-al', $1)`,
    [new Date(T0 - H)],
  );
  await insertFixes([...trail('a', 'd-a', 0), ...trail('b', 'd-b1', 400), ...trail('b', 'd-b2', 900), ...trail('c', 'd-c', 1500, [T0 + 3 * H, T0 + 3 * H + 40 * MIN])]);
  // crimes along the walk, some off it, windows of minutes to hours
  for (let i = 0; i < 40; i++) {
    const from = T0 + ((i * 37) % 500) * MIN;
    const to = from + ((i * 53) % 240) * MIN;
    crimes.push({ id: `c${i}`, from, to, lat: HOME.lat + (((i * 13) % 9) - 4) * 40 / M_PER_DEG, lon: HOME.lon + ((i * 211) % 3000) / (M_PER_DEG * 0.6) });
  }
});

afterAll(async () => {
  await owner?.end();
  await db?.drop();
});

async function plain(from: number, to: number) {
  const { trails, receivedMax } = await loadTrails(db.pool, from, to);
  return { matches: matchCrimes(indexTrails(trails, P), crimes.filter((c) => c.from - P.max_gap_s * 1000 >= from && c.to + P.max_gap_s * 1000 <= to)), receivedMax };
}

async function served(c: TrailCache, from: number, to: number) {
  const hit = await c.serve(db.pool, from, to, P);
  return hit && { matches: matchCrimes(hit.ix, crimes.filter((x) => x.from - P.max_gap_s * 1000 >= from && x.to + P.max_gap_s * 1000 <= to)), receivedMax: hit.receivedMax };
}

describe('the resident trail cache', () => {
  it('serves a window from memory with exactly the plain path’s matches, deciding fixes, coverage and receipt time', async () => {
    const c = cache();
    await c.refresh(db.pool);
    expect(c.covered).toMatchObject({ from: NOW - 12 * H, to: NOW + 3 * H });
    const [from, to] = [T0 - H, NOW + H];
    const ref = await plain(from, to);
    expect(ref.matches.length).toBeGreaterThan(20);
    expect(new Set(ref.matches.map((m) => m.decision.deciding[0]!.reason))).toEqual(new Set(['within', 'overlaps', 'reachable']));
    expect(await served(c, from, to)).toEqual(ref);
  });

  it('does not serve a window outside the resident period (the plain path answers)', async () => {
    const c = cache();
    await c.refresh(db.pool);
    expect(await c.serve(db.pool, NOW - 13 * H, NOW, P)).toBeNull();
    expect(await c.serve(db.pool, NOW - H, NOW + 4 * H, P)).toBeNull();
  });

  it('does not serve a window touching an hour that got a late reading; serves the other hours; after a reload, serves it with the late reading', async () => {
    const c = cache();
    await c.refresh(db.pool);
    // late: a fix of subject a at a crime's place, in the middle of an old hour
    const crime = crimes.find((x) => x.to - x.from > 30 * MIN && x.from > T0 + H && x.to < T0 + 5 * H)!;
    const late = crime.from + Math.floor((crime.to - crime.from) / 2) + 7;
    await insertFixes([{ device: 'd-a', ts: late, lat: crime.lat, lon: crime.lon, acc: 5 }]);
    const [from, to] = [T0 - H, NOW + H];
    expect(await c.serve(db.pool, from, to, P)).toBeNull();
    expect(await c.serve(db.pool, crime.from - H, crime.to + H, P)).toBeNull();
    // hours the late reading did not touch are still served
    const lateHour = Math.floor(late / H) * H;
    expect(await c.serve(db.pool, lateHour + 2 * H, NOW, P)).not.toBeNull();
    expect(c.due()).toBe(false); // stale, but reloaded five minutes after the last load at the earliest
    const ref = await plain(from, to);
    const placed = ref.matches.find((m) => m.crime_id === crime.id && m.subject_id === 'a')!;
    expect(placed.decision.category).toBe('placed');
    expect(placed.decision.deciding.map((f) => f.ts)).toContain(late);
    await c.refresh(db.pool);
    expect(await served(c, from, to)).toEqual(ref);
  });

  it('never misses a reading committed while the cache was loading', async () => {
    const other = await db.pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(`INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data) VALUES ('d-c', 'gps', $1, $2, $3, 8, '{}')`, [new Date(T0 + 6 * H + 1234), HOME.lat, HOME.lon]);
      const c = cache();
      await c.refresh(db.pool); // its snapshot does not see the uncommitted reading
      await other.query('COMMIT');
      expect(await c.serve(db.pool, T0 + 5 * H, T0 + 7 * H, P)).toBeNull();
      expect(await c.serve(db.pool, T0 + 8 * H, NOW, P)).not.toBeNull();
      await c.refresh(db.pool);
      expect(await served(c, T0 + 5 * H, T0 + 7 * H)).toEqual(await plain(T0 + 5 * H, T0 + 7 * H));
    } finally {
      other.release();
    }
  });

  it('does not serve after a fitting changed or readings were deleted, and stays correct across a compaction of the log', async () => {
    const c = cache();
    await c.refresh(db.pool);
    expect(await c.serve(db.pool, T0, NOW, P)).not.toBeNull();
    await db.pool.query(`UPDATE assignments SET end_at = $1 WHERE device_id = 'd-b2'`, [new Date(NOW - H)]);
    expect(await c.serve(db.pool, T0, NOW, P)).toBeNull();
    expect(await c.serve(db.pool, T0, NOW - 2 * H, P)).not.toBeNull(); // the fitting is unchanged before its new end
    await c.refresh(db.pool);
    expect(await served(c, T0, NOW)).toEqual(await plain(T0, NOW));
    await owner.query(`DELETE FROM readings WHERE device_id = 'd-c' AND ts > $1`, [new Date(NOW - 30 * MIN)]);
    expect(await c.serve(db.pool, T0, NOW - 3 * H, P)).toBeNull();
    await c.refresh(db.pool);
    expect(await served(c, T0, NOW)).toEqual(await plain(T0, NOW));
    // folding the log: a cache loaded before sees the folded hours as changed, one loaded after is served
    const older = cache();
    await older.refresh(db.pool);
    expect(await compactGpsHourLog(db.pool, NOW - 30 * 24 * H, T0 + 2 * H)).toBeGreaterThan(0);
    expect(await older.serve(db.pool, T0 + 2 * H, NOW, P)).not.toBeNull(); // hours not folded
    expect(await c.serve(db.pool, T0, NOW, P)).toBeNull();
    await c.refresh(db.pool);
    expect(await served(c, T0, NOW)).toEqual(await plain(T0, NOW));
  });

  it('gives a run the same stored matches and latest receipt time as a run without it', async () => {
    const rows = crimes.slice(0, 20).map((x, i) => ({
      row: i + 1, force: 'NOTTINGHAMSHIRE', crime_type: 'BIAD' as const, batch_id: 'NOT20261201', crime_ref: `R${i}`, from: x.from, to: x.to,
      location: { datum: 'WGS84' as const, lat: x.lat, lon: x.lon }, free_text: '',
    }));
    const b = (await insertBatch(db.pool, { batchId: 'NOT20261201', force: 'NOTTINGHAMSHIRE', by: 'analyst', rows, errors: [], rowsTotal: 20, params: P }))!;
    const second = await insertRun(db.pool, b.id, P, 'analyst', 20);
    const c = cache();
    await c.refresh(db.pool);
    const withCache = await runCrimeMatch(db.pool, b.runId, undefined, c);
    const without = await runCrimeMatch(db.pool, second);
    expect(withCache.cached).toBeGreaterThan(0);
    expect(without.cached).toBe(0);
    const stored = async (run: string) =>
      (await db.pool.query(`SELECT crime_id, subject_id, category, deciding, coverage FROM crime_matches WHERE run_id = $1 ORDER BY crime_id, subject_id`, [run])).rows;
    expect(await stored(b.runId)).toEqual(await stored(second));
    expect((await stored(second)).length).toBe(withCache.matches);
    const rx = await db.pool.query(`SELECT id, readings_received_max FROM crime_runs WHERE id IN ($1, $2) ORDER BY id`, [b.runId, second]);
    expect(rx.rows[0].readings_received_max).not.toBeNull();
    expect(rx.rows[0].readings_received_max).toEqual(rx.rows[1].readings_received_max);
  });
});

describe('the plain loader', () => {
  it('includes a fix exactly at the end of the range (windows are closed: [from, to])', async () => {
    const at = T0 + 4 * H + 2 * MIN; // on the 2-minute grid of subject a
    const { trails } = await loadTrails(db.pool, at - 10 * MIN, at);
    const a = trails.subjects.indexOf('a');
    const ts = [...trails.ts.subarray(trails.start[a]!, trails.start[a + 1]!)];
    expect(ts[ts.length - 1]).toBe(at);
  });
});

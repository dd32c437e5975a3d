import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate, storageMode, type Queryable } from '../../platform/db.js';
import { insertDevice, newDevicePassword, setDeviceActive } from '../../registry/devices.repo.js';
import { applyRetentionPolicy, deleteExpiredReadings } from '../../ingest/retention.js';
import { storeReadings, storeRejections } from '../../ingest/readings.repo.js';
import { parseMessage } from '../../ingest/telemetry.js';
import { createTestDatabase } from '../support/env.js';
import { startTimescale, type TimescaleHandle } from '../support/timescale.js';
import { fittingsBetween, hourCounts } from '../../health/integrity.repo.js';

// The same scenarios run on PGlite + TimescaleDB (hypertable, compression, retention policy) and
// on the stack's PostgreSQL 15 (plain tables, deleteExpiredReadings); equal outputs are the proof
// that both storage paths behave alike. PGlite serves one connection, so the TimescaleDB side
// uses a single pg.Client, and every write stays at 100 readings or fewer (64 KB message limit).

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.now();
/** the config default (6 years): what parseMessage accepted when these readings were received */
const RETENTION_AT_RECEIPT_DAYS = 2190;
const RETENTION_DAYS = 30;

let ts: TimescaleHandle;
let tsDb: pg.Client;
let plain: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  ts = await startTimescale();
  tsDb = new pg.Client({ connectionString: ts.url });
  await tsDb.connect();
  await migrate(tsDb);
  plain = await createTestDatabase();
});

afterAll(async () => {
  await tsDb?.end();
  await ts?.stop();
  await plain?.drop();
});

interface Outcome {
  stored: number;
  duplicates: number;
  /** reasons of parse and store rejections, sorted (the repository returns them in row order) */
  rejections: string[];
}

/** One MQTT message through the real write path: parse, store readings, store rejections. */
async function ingest(db: Queryable, topic: string, items: unknown[]): Promise<Outcome> {
  expect(items.length).toBeLessThanOrEqual(100);
  const parsed = parseMessage(topic, Buffer.from(JSON.stringify(items)), NOW, RETENTION_AT_RECEIPT_DAYS);
  const res = await storeReadings(db, parsed.readings, () => topic);
  const rejections = [...parsed.rejections, ...res.rejections];
  await storeRejections(db, rejections);
  return { stored: res.stored.length, duplicates: res.duplicates.length, rejections: rejections.map((r) => r.reason).sort() };
}

async function register(db: Queryable, id: string, active = true): Promise<void> {
  expect(await insertDevice(db, { id, kind: 'combined', passwordHash: newDevicePassword().hash })).not.toBeNull();
  if (!active) await setDeviceActive(db, id, false);
}

const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const fixes = (n: number, fromMsAgo: number) =>
  Array.from({ length: n }, (_, i) => ({ ts: iso(fromMsAgo - i * 60_000), lat: 52.95 + i * 1e-4, lon: -1.15, accuracy_m: 8, sats: 7 }));

async function readingsOf(db: Queryable, devices: string[]) {
  const r = await db.query(
    `SELECT device_id, stream, ts, lat, lon, accuracy_m, tac, temp_c, ir, battery_pct, data
       FROM readings WHERE device_id = ANY($1) ORDER BY device_id COLLATE "C", stream COLLATE "C", ts`,
    [devices],
  );
  return r.rows;
}

async function rejectionRows(db: Queryable) {
  const r = await db.query(
    `SELECT topic, device_id, item_index, reason, convert_from(raw, 'UTF8') AS raw
       FROM rejections ORDER BY topic COLLATE "C", reason COLLATE "C", item_index, raw`,
  );
  return r.rows;
}

/** Redelivery, conflict, unknown and inactive devices, and a bad item, on one database. */
async function writeScenario(db: Queryable) {
  await register(db, 'TAG-A');
  await register(db, 'TAG-OFF', false);
  const gps = fixes(250, 6 * HOUR);
  const alcohol = Array.from({ length: 60 }, (_, i) => ({ ts: iso(5 * HOUR - i * 120_000), tac: i * 0.001, temp_c: 31.5, ir: 1.2 }));
  const status: Array<Record<string, unknown>> = Array.from({ length: 30 }, (_, i) => ({ ts: iso(4 * HOUR - i * 300_000), battery_pct: 90 - i, strap: 'ok' }));
  status[7] = { ...status[7], battery_pct: 150 };
  const messages: Array<[string, unknown[]]> = [
    ['tags/v1/TAG-A/gps', gps.slice(0, 100)],
    ['tags/v1/TAG-A/gps', gps.slice(100, 200)],
    ['tags/v1/TAG-A/gps', gps.slice(200)],
    ['tags/v1/TAG-A/alcohol', alcohol],
    ['tags/v1/TAG-A/status', status],
  ];
  const first: Outcome[] = [];
  for (const [topic, items] of messages) first.push(await ingest(db, topic, items));
  const redelivered: Outcome[] = [];
  for (const [topic, items] of messages) redelivered.push(await ingest(db, topic, items));
  const moved = { ...gps[0]!, lat: gps[0]!.lat + 0.001 };
  const mixed = await ingest(db, 'tags/v1/TAG-A/gps', [moved, gps[1], ...fixes(1, 30 * 60_000)]);
  const unknown = await ingest(db, 'tags/v1/TAG-GHOST/gps', fixes(3, HOUR));
  const inactive = await ingest(db, 'tags/v1/TAG-OFF/alcohol', alcohol.slice(0, 2));
  return {
    first,
    redelivered,
    mixed,
    unknown,
    inactive,
    readings: await readingsOf(db, ['TAG-A', 'TAG-OFF', 'TAG-GHOST']),
    rejections: await rejectionRows(db),
    gps0: gps[0]!,
  };
}

async function policyJobs(proc: 'policy_compression' | 'policy_retention') {
  const r = await tsDb.query<{ job_id: number; config: Record<string, unknown> }>(
    `SELECT job_id, config FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_name = 'readings'`,
    [proc],
  );
  return r.rows;
}

async function chunks() {
  const r = await tsDb.query<{ old: boolean; is_compressed: boolean }>(
    `SELECT range_end <= now() - make_interval(days => $1) AS old, is_compressed
       FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' ORDER BY range_start`,
    [RETENTION_DAYS],
  );
  return r.rows;
}

describe('TimescaleDB path (PGlite) and plain PostgreSQL path', () => {
  it('takes the TimescaleDB path with a compressed hypertable where the extension exists, plain tables elsewhere', async () => {
    expect(await storageMode(tsDb)).toBe('timescaledb');
    expect(await storageMode(plain.pool)).toBe('postgresql');
    const ht = await tsDb.query(
      `SELECT h.hypertable_name, h.compression_enabled, d.column_name, d.time_interval::text AS chunk_interval
         FROM timescaledb_information.hypertables h
         JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)`,
    );
    expect(ht.rows).toEqual([{ hypertable_name: 'readings', compression_enabled: true, column_name: 'ts', chunk_interval: '7 days' }]);
    const cs = await tsDb.query(
      `SELECT attname, segmentby_column_index, orderby_column_index FROM timescaledb_information.compression_settings
        WHERE hypertable_name = 'readings' ORDER BY attname`,
    );
    expect(cs.rows).toEqual([
      { attname: 'device_id', segmentby_column_index: 1, orderby_column_index: null },
      { attname: 'stream', segmentby_column_index: 2, orderby_column_index: null },
      { attname: 'ts', segmentby_column_index: null, orderby_column_index: 1 },
    ]);
    expect((await policyJobs('policy_compression')).map((j) => j.config.compress_after)).toEqual(['30 days']);
    const noTs = await plain.pool.query(`SELECT to_regclass('timescaledb_information.hypertables') AS v`);
    expect(noTs.rows).toEqual([{ v: null }]);
  });

  it('applyRetentionPolicy keeps one retention job on TimescaleDB and leaves plain PostgreSQL to the worker', async () => {
    expect(await applyRetentionPolicy(tsDb, 90)).toBe('timescaledb');
    expect(await applyRetentionPolicy(tsDb, RETENTION_DAYS)).toBe('timescaledb');
    expect((await policyJobs('policy_retention')).map((j) => j.config.drop_after)).toEqual([`${RETENTION_DAYS} days`]);
    expect(await applyRetentionPolicy(plain.pool, RETENTION_DAYS)).toBe('postgresql');
  });

  it('stores readings exactly once and rejects the same readings, identically on both paths', async () => {
    const onTs = await writeScenario(tsDb);
    const onPg = await writeScenario(plain.pool);
    const counts = [100, 100, 50, 60, 29];
    const badItem = expect.stringMatching(/^invalid: item 7: status\.battery_pct: /);
    expect(onTs.first).toEqual(counts.map((n, i) => ({ stored: n, duplicates: 0, rejections: i === 4 ? [badItem] : [] })));
    expect(onTs.redelivered).toEqual(counts.map((n, i) => ({ stored: 0, duplicates: n, rejections: i === 4 ? [badItem] : [] })));
    expect(onTs.mixed).toEqual({
      stored: 1,
      duplicates: 1,
      rejections: [`conflict: a different gps reading of TAG-A at ${onTs.gps0.ts} is already stored`],
    });
    expect(onTs.unknown).toEqual({ stored: 0, duplicates: 0, rejections: Array(3).fill('unknown_device: device TAG-GHOST is not registered') });
    expect(onTs.inactive).toEqual({ stored: 0, duplicates: 0, rejections: Array(2).fill('inactive_device: device TAG-OFF is not active') });
    expect(onTs.readings).toHaveLength(251 + 60 + 29);
    expect(onTs.readings.find((r) => r.stream === 'gps' && r.ts.getTime() === Date.parse(onTs.gps0.ts))).toMatchObject({ lat: onTs.gps0.lat, data: onTs.gps0 });
    expect(onTs.rejections.map((r) => r.reason.split(':')[0])).toEqual(['conflict', 'invalid', 'invalid', 'unknown_device', 'unknown_device', 'unknown_device', 'inactive_device', 'inactive_device']);
    expect(onTs).toEqual(onPg);
  });

  it('drops readings older than the retention on both paths, compressed chunks included, and keeps recent ones', async () => {
    const topic = 'tags/v1/TAG-RET/gps';
    const old = fixes(60, 60 * DAY);
    const recent = fixes(60, 2 * HOUR);
    const steps = async (db: Queryable, beforeRedelivery: () => Promise<void>) => {
      await register(db, 'TAG-RET');
      const seeded = [await ingest(db, topic, old), await ingest(db, topic, recent)];
      await beforeRedelivery();
      // ON CONFLICT DO NOTHING against a compressed chunk: still a duplicate, never a second row.
      const redelivered = await ingest(db, topic, old);
      const conflicting = await ingest(db, topic, [{ ...old[5]!, lat: 51.5 }]);
      const n = await db.query<{ n: string }>(`SELECT count(*) AS n FROM readings WHERE device_id = 'TAG-RET'`);
      return { seeded, redelivered, conflicting, count: Number(n.rows[0]!.n) };
    };

    const onTs = await steps(tsDb, async () => {
      const [job] = await policyJobs('policy_compression');
      await tsDb.query(`CALL run_job($1)`, [job!.job_id]);
      const c = await chunks();
      // the policy compresses every chunk wholly older than 30 days (the 60-day-old fixes) and no other
      expect(c.some((x) => x.old)).toBe(true);
      expect(c.map((x) => x.is_compressed)).toEqual(c.map((x) => x.old));
    });
    const onPg = await steps(plain.pool, async () => {});
    expect(onTs).toEqual({
      seeded: [{ stored: 60, duplicates: 0, rejections: [] }, { stored: 60, duplicates: 0, rejections: [] }],
      redelivered: { stored: 0, duplicates: 60, rejections: [] },
      conflicting: { stored: 0, duplicates: 0, rejections: [`conflict: a different gps reading of TAG-RET at ${old[5]!.ts} is already stored`] },
      count: 120,
    });
    expect(onTs).toEqual(onPg);

    const [retention] = await policyJobs('policy_retention');
    await tsDb.query(`CALL run_job($1)`, [retention!.job_id]);
    expect(await deleteExpiredReadings(plain.pool, RETENTION_DAYS, new Date())).toBe(60);

    const keptTs = await readingsOf(tsDb, ['TAG-RET', 'TAG-A']);
    expect(keptTs.filter((r) => r.device_id === 'TAG-RET').map((r) => r.ts.toISOString())).toEqual(recent.map((f) => f.ts).sort());
    expect(keptTs.filter((r) => r.device_id === 'TAG-A')).toHaveLength(340);
    expect(keptTs).toEqual(await readingsOf(plain.pool, ['TAG-RET', 'TAG-A']));
    expect((await chunks()).filter((x) => x.old)).toEqual([]);
  });
  it('counts readings per subject, stream and UTC hour (monitoring integrity) identically on both paths', async () => {
    const start = Math.floor(NOW / HOUR) * HOUR - 5 * HOUR;
    const steps = async (db: Queryable) => {
      await db.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('TS-MON', 'x', 'flex', 'amber', '{om-1}')`);
      await db.query(`INSERT INTO devices (id, kind) VALUES ('TAG-MON', 'combined')`);
      await db.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('TS-MON', 'TAG-MON', $1)`, [new Date(start + HOUR / 2)]);
      // a fix every 5 minutes for 4 hours from 30 minutes before the fitting, an alcohol reading every 30
      await db.query(
        `INSERT INTO readings (device_id, stream, ts, data) SELECT 'TAG-MON', 'gps', t, '{}'::jsonb FROM generate_series($1::timestamptz, $2::timestamptz, interval '5 minutes') t`,
        [new Date(start), new Date(start + 4 * HOUR - 60_000)],
      );
      await db.query(
        `INSERT INTO readings (device_id, stream, ts, data) SELECT 'TAG-MON', 'alcohol', t, '{}'::jsonb FROM generate_series($1::timestamptz, $2::timestamptz, interval '30 minutes') t`,
        [new Date(start), new Date(start + 4 * HOUR - 60_000)],
      );
      const counts = await hourCounts(db, ['TS-MON'], ['gps', 'alcohol'], new Date(start - HOUR), new Date(NOW));
      const fittings = await fittingsBetween(db, null, new Date(start - HOUR), new Date(NOW));
      return { counts: (counts.get('TS-MON') ?? []).sort((a, b) => a.hour - b.hour || a.stream.localeCompare(b.stream)), fittings };
    };
    const onTs = await steps(tsDb);
    expect(onTs.counts).toEqual([
      { stream: 'alcohol', hour: start, received: 1 },
      { stream: 'gps', hour: start, received: 6 },
      ...[1, 2, 3].flatMap((h) => [
        { stream: 'alcohol' as const, hour: start + h * HOUR, received: 2 },
        { stream: 'gps' as const, hour: start + h * HOUR, received: 12 },
      ]),
    ]);
    expect(onTs.fittings).toEqual([{ subject_id: 'TS-MON', device_id: 'TAG-MON', kind: 'combined', start: start + HOUR / 2, end: null }]);
    expect(await steps(plain.pool)).toEqual(onTs);
  });
});

describe('the GPS change log of the crime trail cache (gps_hour_log, readings_delete_epoch)', () => {
  it('logs every hour a GPS reading was stored in and moves the delete epoch on a DELETE, identically on both paths', async () => {
    const start = Math.floor(NOW / HOUR) * HOUR - 3 * HOUR;
    const steps = async (db: Queryable) => {
      await db.query(`INSERT INTO devices (id, kind) VALUES ('TAG-LOG', 'gps')`);
      const epoch = async () => (await db.query<{ x: string }>(`SELECT xid::text AS x FROM readings_delete_epoch`)).rows[0]!.x;
      const before = await epoch();
      const logged = (await db.query<{ x: string }>(`SELECT DISTINCT xid::text AS x FROM gps_hour_log`)).rows.map((r) => r.x);
      await db.query(
        `INSERT INTO readings (device_id, stream, ts, data) SELECT 'TAG-LOG', s, t, '{}'::jsonb FROM generate_series($1::timestamptz, $2::timestamptz, interval '20 minutes') t, unnest(ARRAY['gps', 'alcohol']) s`,
        [new Date(start + 10 * 60_000), new Date(start + 2 * HOUR + 10 * 60_000)],
      );
      const hours = (await db.query<{ h: Date }>(`SELECT DISTINCT hour AS h FROM gps_hour_log WHERE xid::text NOT IN (SELECT unnest($1::text[])) ORDER BY 1`, [logged])).rows.map((r) => r.h.getTime());
      await db.query(`DELETE FROM readings WHERE device_id = 'TAG-LOG' AND stream = 'alcohol'`);
      return { hours, moved: (await epoch()) !== before };
    };
    const onTs = await steps(tsDb);
    expect(onTs).toEqual({ hours: [start, start + HOUR, start + 2 * HOUR], moved: true });
    expect(await steps(plain.pool)).toEqual(onTs);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../platform/db.js';
import { ensureDatabaseRoles } from '../../scripts/stack/services.js';
import { archivedCluster, type ArchivedCluster } from '../../scripts/backup/pitr.js';

/**
 * Issue 14 §3b: WAL archiving and base backups with pgBackRest, and recovery to a point in time.
 * A real cluster (Debian's PostgreSQL 15 and pgbackrest) with the tagwatch schema takes a full
 * backup, stores readings, then loses them to an accidental DELETE; the database is restored to
 * a time just before the erasure. Then the server itself is lost (crash, data directory gone) and
 * restored to the end of the archive: the readings committed in the last `archive_timeout`
 * seconds are what a lost server can take with it (RPO). Times are measured and printed.
 */
const ARCHIVE_TIMEOUT_S = 5;
let cluster: ArchivedCluster;
const measured: Record<string, string> = {};

async function client(c: ArchivedCluster): Promise<pg.Client> {
  const k = new pg.Client({ connectionString: c.url('tagwatch') });
  await k.connect();
  return k;
}

async function insertReadings(k: pg.Client, from: number, n: number): Promise<void> {
  await k.query(
    `INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data)
     SELECT 'P-D1', 'gps', to_timestamp(1796000000 + i * 60), now(), 52.95, -1.15, 10, jsonb_build_object('seq', i)
       FROM generate_series($1::int, $2::int) i`,
    [from, from + n - 1],
  );
}

const count = async (k: pg.Client) => (await k.query<{ n: number }>(`SELECT count(*)::int n FROM readings`)).rows[0]!.n;

/** Starts the cluster after a restore and waits until recovery has ended (the server takes writes). */
async function startAndWaitPromoted(c: ArchivedCluster): Promise<void> {
  await c.start();
  for (let i = 0; i < 600; i++) {
    const k = new pg.Client({ connectionString: c.url() });
    try {
      await k.connect();
      const r = await k.query<{ r: boolean }>(`SELECT pg_is_in_recovery() r`);
      if (!r.rows[0]!.r) return;
    } catch {
      // still starting
    } finally {
      await k.end().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the restored cluster did not leave recovery');
}

beforeAll(async () => {
  cluster = await archivedCluster(ARCHIVE_TIMEOUT_S);
  const su = new pg.Client({ connectionString: cluster.url() });
  await su.connect();
  await su.query(`CREATE DATABASE tagwatch`);
  await su.end();
  await ensureDatabaseRoles(cluster.url(), { owner: 'pitr-owner', app: 'pitr-app' }, ['tagwatch']);
  const k = await client(cluster);
  await migrate(k);
  await k.query(`INSERT INTO devices (id, kind) VALUES ('P-D1', 'gps')`);
  await k.end();
  const t = performance.now();
  cluster.pgbackrest('backup', '--type=full');
  measured.backup = `${((performance.now() - t) / 1000).toFixed(1)} s`;
}, 180_000);

afterAll(() => {
  cluster?.remove();
  console.log(`pgBackRest recovery, measured:\n${Object.entries(measured).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
});

describe('backups and recovery to a point in time (pgBackRest)', () => {
  it('restores the database to a time before an accidental erasure: everything before it is back, nothing after it', async () => {
    const k = await client(cluster);
    await insertReadings(k, 0, 5000);
    // the recovery point: after the 5,000 readings, before the mistake (server clock)
    await new Promise((r) => setTimeout(r, 1100));
    const before = (await k.query<{ t: Date }>(`SELECT clock_timestamp() t`)).rows[0]!.t;
    await new Promise((r) => setTimeout(r, 1100));
    await k.query(`DELETE FROM readings`);
    await insertReadings(k, 10_000, 10); // written after the mistake
    await k.query(`SELECT pg_switch_wal()`);
    await k.end();
    cluster.pgbackrest('check'); // waits until the segment with the erasure is archived

    cluster.stop('fast');
    const t = performance.now();
    cluster.restore(before);
    await startAndWaitPromoted(cluster);
    measured['restore to a time (RTO: restore + replay + promote)'] = `${((performance.now() - t) / 1000).toFixed(1)} s`;

    const r = await client(cluster);
    expect(await count(r)).toBe(5000);
    expect((await r.query(`SELECT count(*)::int n FROM readings WHERE (data->>'seq')::int >= 10000`)).rows[0].n).toBe(0);
    await r.end();
    measured['recovery point of the erasure'] = 'the chosen time: every reading committed before it restored (5,000 of 5,000), none after';
  });

  it('a lost server: restored to the end of the archive, it loses at most the readings of the last archive_timeout seconds', async () => {
    // a new timeline after the promotion: a new full backup as after any recovery
    cluster.pgbackrest('backup', '--type=full');
    const k = await client(cluster);
    await k.query(`DELETE FROM readings`);
    const committed: Array<{ seq: number; at: number }> = [];
    const started = Date.now();
    for (let seq = 0; Date.now() - started < 3 * ARCHIVE_TIMEOUT_S * 1000; seq++) {
      await insertReadings(k, 100_000 + seq, 1);
      committed.push({ seq: 100_000 + seq, at: Date.now() });
      await new Promise((r) => setTimeout(r, 50));
    }
    await k.end();
    const lostAt = Date.now();
    cluster.stop('immediate'); // the crash …
    cluster.destroyData(); // … and the disk with it

    const t = performance.now();
    cluster.restore();
    await startAndWaitPromoted(cluster);
    measured['restore of a lost server to the end of the archive (RTO)'] = `${((performance.now() - t) / 1000).toFixed(1)} s`;

    const r = await client(cluster);
    const seqs = (await r.query<{ seq: number }>(`SELECT (data->>'seq')::int seq FROM readings WHERE (data->>'seq')::int >= 100000 ORDER BY 1`)).rows.map((x) => x.seq);
    await r.end();
    const last = seqs.length ? seqs[seqs.length - 1]! : null;
    const kept = committed.filter((c) => last !== null && c.seq <= last);
    const lastKeptAt = kept.length ? kept[kept.length - 1]!.at : started;
    const rpoS = (lostAt - lastKeptAt) / 1000;
    measured['recovery point of a lost server (RPO)'] = `${rpoS.toFixed(1)} s (${committed.length - kept.length} of ${committed.length} readings committed in the last seconds lost; archive_timeout ${ARCHIVE_TIMEOUT_S} s)`;
    // the readings restored are exactly a prefix of those committed: nothing torn, nothing reordered
    expect(kept.length).toBeGreaterThan(0);
    expect(seqs).toEqual(kept.map((c) => c.seq));
    expect(rpoS).toBeLessThanOrEqual(ARCHIVE_TIMEOUT_S + 2);
  });
});

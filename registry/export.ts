import { PassThrough, type Readable } from 'node:stream';
import { ZipArchive } from 'archiver';
import { stringify } from 'csv-stringify';
import { to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';

/** Files of a subject access export, in archive order (docs/security.md lists their columns). */
export const EXPORT_FILES = [
  'manifest.json',
  'subject.json',
  'assignments.csv',
  'readings.csv',
  'rejections.csv',
  'alerts.json',
  'alert_events.csv',
  'zones.json',
  'days.csv',
  'audit.csv',
] as const;

/**
 * Everything held about one subject as a zip of JSON and CSV files, streamed: the large tables
 * (readings, rejections, audit rows) go from PostgreSQL's COPY straight into the archive, never
 * whole in memory. `client` must be in a REPEATABLE READ transaction (one snapshot for every
 * file) and stay checked out until `done` settles; `now` is the export time for the manifest.
 */
export function exportSubject(client: pg.PoolClient, subjectId: string, now: Date): { archive: Readable; done: Promise<void> } {
  const zip = new ZipArchive({ zlib: { level: 6 } });
  const id = client.escapeLiteral(subjectId);
  // a device's data belongs to the subject within the subject's fitted periods
  const inPeriods = (alias: string, time: string) =>
    `EXISTS (SELECT 1 FROM assignments a WHERE a.subject_id = ${id} AND a.device_id = ${alias}.device_id
               AND ${alias}.${time} >= a.start_at AND ${alias}.${time} < coalesce(a.end_at, 'infinity'))`;
  const copy = (sql: string): Readable => client.query(copyTo(`COPY (${sql}) TO STDOUT WITH (FORMAT csv, HEADER true)`));
  const json = async (sql: string) => (await client.query(sql)).rows;
  const csv = (rows: Record<string, unknown>[], columns: string[]): Readable => {
    const out = stringify({ header: true, columns, cast: { date: (d) => d.toISOString(), object: (o) => JSON.stringify(o) } });
    for (const r of rows) out.write(r);
    out.end();
    return out;
  };
  // entries are appended one after another: each COPY runs when the archive reaches it, as one
  // connection serves one COPY at a time
  const entry = (name: string, source: () => Promise<Readable | string> | Readable | string) =>
    async () => {
      const s = await source();
      await new Promise<void>((resolve, reject) => {
        if (typeof s === 'string') {
          zip.append(s, { name, date: now });
          resolve();
          return;
        }
        const through = new PassThrough();
        s.on('error', reject);
        through.on('end', resolve);
        through.on('error', reject);
        s.pipe(through);
        zip.append(through, { name, date: now });
      });
    };
  const steps = [
    entry('manifest.json', () => JSON.stringify({ subject_id: subjectId, exported_at: now.toISOString(), files: EXPORT_FILES }, null, 2)),
    entry('subject.json', async () => JSON.stringify((await json(`SELECT id, display_name, cohort, rag, timezone, offender_manager_ids, created_at FROM subjects WHERE id = ${id}`))[0] ?? null, null, 2)),
    entry('assignments.csv', async () =>
      csv(await json(`SELECT id::text, device_id, start_at, end_at, created_at FROM assignments WHERE subject_id = ${id} ORDER BY start_at, id`), ['id', 'device_id', 'start_at', 'end_at', 'created_at']),
    ),
    entry('readings.csv', () =>
      copy(
        `SELECT r.device_id, r.stream, r.ts, r.received_at, r.lat, r.lon, r.accuracy_m, r.tac, r.temp_c, r.ir, r.battery_pct, r.data
           FROM readings r WHERE ${inPeriods('r', 'ts')} ORDER BY r.ts, r.device_id, r.stream`,
      ),
    ),
    entry('rejections.csv', () =>
      copy(`SELECT r.id, r.received_at, r.topic, r.device_id, r.item_index, r.reason, convert_from(r.raw, 'UTF8') AS raw FROM rejections r WHERE ${inPeriods('r', 'received_at')} ORDER BY r.id`),
    ),
    entry('alerts.json', async () =>
      JSON.stringify(
        await json(
          `SELECT al.*, coalesce((SELECT json_agg(json_build_object('at', e.at, 'actor', e.actor, 'action', e.action, 'note', e.note) ORDER BY e.at, e.id)
                                   FROM alert_events e WHERE e.alert_id = al.id), '[]') AS history
             FROM alerts al WHERE al.subject_id = ${id} ORDER BY al.raised_at, al.id`,
        ),
        null,
        2,
      ),
    ),
    entry('alert_events.csv', () =>
      copy(`SELECT e.id, e.alert_id, e.at, e.actor, e.action, e.note FROM alert_events e JOIN alerts al ON al.id = e.alert_id WHERE al.subject_id = ${id} ORDER BY e.at, e.id`),
    ),
    entry('zones.json', async () =>
      JSON.stringify(
        await json(
          `SELECT id, kind, name, geometry, radius_m, schedule, active_from, active_to, exceptions, grace_s, created_by, created_at, deleted_at
             FROM zones WHERE subject_id = ${id} ORDER BY created_at, id`,
        ),
        null,
        2,
      ),
    ),
    entry('days.csv', () =>
      copy(`SELECT date, status, covered_minutes, drinking_events, tampers, params_version, computed_at FROM alcohol_days WHERE subject_id = ${id} ORDER BY date`),
    ),
    entry('audit.csv', () => copy(`SELECT id, at, actor, role, action, subject_id, ip, detail FROM audit_log WHERE subject_id = ${id} ORDER BY id`)),
  ];
  const done = (async () => {
    try {
      for (const step of steps) await step();
      await zip.finalize();
    } catch (err) {
      zip.destroy(err as Error);
      throw err;
    }
  })();
  done.catch(() => undefined); // the caller awaits it; the archive stream carries the error too
  return { archive: zip, done };
}

import type { Queryable } from '../platform/db.js';
import type { CrimeRow, RowError } from './batch.js';
import { gridToWgs84 } from './grid.js';
import type { Match } from './match.js';
import { crimeParamsVersion, type CrimeParams } from './rules.js';

/** Batches, crimes, runs, matches and checks of crime matching (contract §8). */

export interface CrimeRecord {
  id: string;
  batch_id: string;
  row_no: number;
  crime_ref: string;
  crime_type: string;
  force: string;
  from_at: Date;
  to_at: Date;
  lat: number;
  lon: number;
  datum: string;
  easting: number | null;
  northing: number | null;
  free_text: string;
}

export interface RunRecord {
  id: string;
  batch_id: string;
  params: CrimeParams;
  params_version: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  crimes_total: number;
  crimes_done: number;
  readings_received_max: Date | null;
  requested_by: string;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  error: string | null;
}

/** Stores a checked batch and its first run (queued); null when the police batch id was seen before. */
export async function insertBatch(
  db: Queryable,
  a: { batchId: string; force: string; by: string; rows: CrimeRow[]; errors: RowError[]; rowsTotal: number; params: CrimeParams },
): Promise<{ id: string; runId: string } | null> {
  const b = await db.query<{ id: string }>(
    `INSERT INTO crime_batches (police_batch_id, force, uploaded_by, rows_total, row_errors) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (police_batch_id) DO NOTHING RETURNING id`,
    [a.batchId, a.force, a.by, a.rowsTotal, JSON.stringify(a.errors)],
  );
  const id = b.rows[0]?.id;
  if (!id) return null;
  const located = a.rows.map((r) => {
    const p = r.location.datum === 'OSGB36' ? gridToWgs84(r.location.easting, r.location.northing) : { lat: r.location.lat, lon: r.location.lon };
    return { ...r, ...p, e: r.location.datum === 'OSGB36' ? r.location.easting : null, n: r.location.datum === 'OSGB36' ? r.location.northing : null };
  });
  await db.query(
    `INSERT INTO crimes (batch_id, row_no, crime_ref, crime_type, force, from_at, to_at, lat, lon, datum, easting, northing, free_text)
     SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::float8[], $9::float8[], $10::text[], $11::float8[], $12::float8[], $13::text[])`,
    [
      id,
      located.map((r) => r.row),
      located.map((r) => r.crime_ref),
      located.map((r) => r.crime_type),
      located.map((r) => r.force),
      located.map((r) => new Date(r.from)),
      located.map((r) => new Date(r.to)),
      located.map((r) => r.lat),
      located.map((r) => r.lon),
      located.map((r) => r.location.datum),
      located.map((r) => r.e),
      located.map((r) => r.n),
      located.map((r) => r.free_text),
    ],
  );
  const runId = await insertRun(db, id, a.params, a.by, a.rows.length);
  return { id, runId };
}

export async function insertRun(db: Queryable, batchId: string, params: CrimeParams, by: string, crimes: number): Promise<string> {
  const r = await db.query<{ id: string }>(
    `INSERT INTO crime_runs (batch_id, params, params_version, crimes_total, requested_by) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
    [batchId, JSON.stringify(params), crimeParamsVersion(params), crimes, by],
  );
  return r.rows[0]!.id;
}

export async function getBatch(db: Queryable, id: string) {
  const b = await db.query<{ id: string; police_batch_id: string; force: string; uploaded_by: string; uploaded_at: Date; rows_total: number; row_errors: RowError[] }>(
    `SELECT id, police_batch_id, force, uploaded_by, uploaded_at, rows_total, row_errors FROM crime_batches WHERE id = $1`,
    [id],
  );
  if (!b.rows[0]) return null;
  const runs = await db.query<RunRecord>(`SELECT * FROM crime_runs WHERE batch_id = $1 ORDER BY id`, [id]);
  const crimes = await db.query<{ n: string }>(`SELECT count(*) AS n FROM crimes WHERE batch_id = $1`, [id]);
  return { ...b.rows[0], crimes: Number(crimes.rows[0]!.n), runs: runs.rows };
}

export async function getRun(db: Queryable, id: string): Promise<RunRecord | null> {
  return (await db.query<RunRecord>(`SELECT * FROM crime_runs WHERE id = $1`, [id])).rows[0] ?? null;
}

export async function batchCrimes(db: Queryable, batchId: string): Promise<CrimeRecord[]> {
  return (await db.query<CrimeRecord>(`SELECT * FROM crimes WHERE batch_id = $1 ORDER BY from_at, id`, [batchId])).rows;
}

export async function getCrime(db: Queryable, id: string): Promise<CrimeRecord | null> {
  return (await db.query<CrimeRecord>(`SELECT * FROM crimes WHERE id = $1`, [id])).rows[0] ?? null;
}

export async function startRun(db: Queryable, runId: string): Promise<void> {
  await db.query(`UPDATE crime_runs SET status = 'running', started_at = coalesce(started_at, now()), crimes_done = 0, error = NULL WHERE id = $1`, [runId]);
  await db.query(`DELETE FROM crime_matches WHERE run_id = $1`, [runId]); // a retried run starts clean
}

/** Stores a chunk of a run's matches and moves its progress on. */
export async function saveMatches(db: Queryable, runId: string, matches: Match[], crimesDone: number, receivedMax: number | null): Promise<void> {
  if (matches.length) {
    await db.query(
      `INSERT INTO crime_matches (run_id, crime_id, subject_id, category, deciding, coverage)
       SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])`,
      [
        runId,
        matches.map((m) => m.crime_id),
        matches.map((m) => m.subject_id),
        matches.map((m) => m.decision.category),
        matches.map((m) => JSON.stringify(m.decision.deciding.map((f) => ({ ...f, ts: new Date(f.ts).toISOString() })))),
        matches.map((m) => JSON.stringify(m.decision.coverage)),
      ],
    );
  }
  await db.query(
    `UPDATE crime_runs SET crimes_done = crimes_done + $2,
            readings_received_max = CASE WHEN $3::timestamptz IS NULL THEN readings_received_max ELSE greatest(readings_received_max, $3::timestamptz) END
      WHERE id = $1`,
    [runId, crimesDone, receivedMax === null ? null : new Date(receivedMax)],
  );
}

export async function finishRun(db: Queryable, runId: string, error: string | null): Promise<void> {
  await db.query(`UPDATE crime_runs SET status = $2, finished_at = now(), error = $3 WHERE id = $1`, [runId, error ? 'failed' : 'done', error]);
}

export interface MatchRecord {
  id: string;
  run_id: string;
  crime_id: string;
  subject_id: string;
  display_name: string;
  category: 'placed' | 'possible';
  deciding: unknown[];
  coverage: unknown;
  review: 'pending' | 'confirmed' | 'rejected';
  reviewed_by: string | null;
  reviewed_at: Date | null;
  review_note: string | null;
  alert_id: string | null;
}

/** A crime's placed and possible subjects in one run (the latest finished one unless named). */
export async function crimeMatches(db: Queryable, crimeId: string, runId: string | null): Promise<{ run: RunRecord | null; matches: MatchRecord[] }> {
  const run = runId
    ? await getRun(db, runId)
    : ((await db.query<RunRecord>(`SELECT r.* FROM crime_runs r JOIN crimes c ON c.batch_id = r.batch_id WHERE c.id = $1 AND r.status = 'done' ORDER BY r.id DESC LIMIT 1`, [crimeId])).rows[0] ?? null);
  if (!run) return { run: null, matches: [] };
  const m = await db.query<MatchRecord>(
    `SELECT m.id, m.run_id, m.crime_id, m.subject_id, s.display_name, m.category, m.deciding, m.coverage, m.review, m.reviewed_by, m.reviewed_at, m.review_note, m.alert_id
       FROM crime_matches m JOIN subjects s ON s.id = m.subject_id
      WHERE m.crime_id = $1 AND m.run_id = $2 ORDER BY m.category, m.subject_id`,
    [crimeId, run.id],
  );
  return { run, matches: m.rows };
}

export async function getMatch(db: Queryable, id: string): Promise<MatchRecord | null> {
  const r = await db.query<MatchRecord>(
    `SELECT m.id, m.run_id, m.crime_id, m.subject_id, s.display_name, m.category, m.deciding, m.coverage, m.review, m.reviewed_by, m.reviewed_at, m.review_note, m.alert_id
       FROM crime_matches m JOIN subjects s ON s.id = m.subject_id WHERE m.id = $1`,
    [id],
  );
  return r.rows[0] ?? null;
}

export async function recordCheck(db: Queryable, c: { crimeId: string; subjectId: string; actor: string; reason: string; category: string; paramsVersion: string }): Promise<void> {
  await db.query(`INSERT INTO crime_checks (crime_id, subject_id, actor, reason, category, params_version) VALUES ($1, $2, $3, $4, $5, $6)`, [
    c.crimeId,
    c.subjectId,
    c.actor,
    c.reason,
    c.category,
    c.paramsVersion,
  ]);
}

export async function listChecks(db: Queryable, limit: number, before: string | null) {
  const r = await db.query(
    `SELECT k.id, k.crime_id, c.crime_ref, k.subject_id, k.actor, k.reason, k.category, k.params_version, k.at
       FROM crime_checks k JOIN crimes c ON c.id = k.crime_id
      WHERE ($2::bigint IS NULL OR k.id < $2) ORDER BY k.id DESC LIMIT $1`,
    [limit, before],
  );
  return r.rows;
}

import type { Queryable } from '../platform/db.js';

/** What the console's crime pages read beyond the API's repository: the list of batches (no personal data). */

export interface BatchRow {
  id: string;
  police_batch_id: string;
  force: string;
  uploaded_by: string;
  uploaded_at: Date;
  rows_total: number;
  crimes: number;
  rejected: number;
  run_status: string | null;
  crimes_done: number | null;
  crimes_total: number | null;
}

/** Newest first, with the latest run's progress. */
export async function listBatches(db: Queryable, limit: number): Promise<BatchRow[]> {
  const r = await db.query<BatchRow>(
    `SELECT b.id::text, b.police_batch_id, b.force, b.uploaded_by, b.uploaded_at, b.rows_total,
            (SELECT count(*) FROM crimes c WHERE c.batch_id = b.id)::int AS crimes, jsonb_array_length(b.row_errors) AS rejected,
            r.status AS run_status, r.crimes_done, r.crimes_total
       FROM crime_batches b
       LEFT JOIN LATERAL (SELECT status, crimes_done, crimes_total FROM crime_runs WHERE batch_id = b.id ORDER BY id DESC LIMIT 1) r ON true
      ORDER BY b.id DESC LIMIT $1`,
    [limit],
  );
  return r.rows;
}

export interface BatchCrimeRow {
  id: string;
  row_no: number;
  crime_ref: string;
  crime_type: string;
  from_at: Date;
  to_at: Date;
  placed: number;
  possible: number;
}

/** A batch's crimes in file order, with the counts of placed and possible subjects in a run (no names). */
export async function batchCrimeRows(db: Queryable, batchId: string, runId: string | null): Promise<BatchCrimeRow[]> {
  const r = await db.query<BatchCrimeRow>(
    `SELECT c.id::text, c.row_no, c.crime_ref, c.crime_type, c.from_at, c.to_at,
            (SELECT count(*) FROM crime_matches m WHERE m.crime_id = c.id AND m.run_id = $2 AND m.category = 'placed')::int AS placed,
            (SELECT count(*) FROM crime_matches m WHERE m.crime_id = c.id AND m.run_id = $2 AND m.category = 'possible')::int AS possible
       FROM crimes c WHERE c.batch_id = $1 ORDER BY c.row_no LIMIT 5000`,
    [batchId, runId],
  );
  return r.rows;
}

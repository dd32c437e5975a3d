import type { Queryable } from '../platform/db.js';
import { csvCell } from './batch.js';

/** The results of one run of a batch as CSV, every text cell through csvCell (formula-safe). */

const HEADER = ['crime_ref', 'crime_type', 'from', 'to', 'free_text', 'subject_id', 'display_name', 'category', 'nearest_distance_m', 'review', 'match_id'];

export async function resultsCsv(
  db: Queryable,
  batchId: string,
  runId: string | null,
): Promise<{ ok: true; csv: string; runId: string; rows: number; crimeRefs: string[]; subjects: string[] } | { ok: false; detail: string }> {
  const run = (
    await db.query<{ id: string }>(
      `SELECT id::text FROM crime_runs WHERE batch_id = $1 AND ($2::bigint IS NULL OR id = $2) AND ($2::bigint IS NOT NULL OR status = 'done') ORDER BY id DESC LIMIT 1`,
      [batchId, runId],
    )
  ).rows[0];
  if (!run) return { ok: false, detail: runId ? `run ${runId} of crime batch ${batchId} not found` : `crime batch ${batchId} has no finished run` };
  const r = await db.query<{ crime_ref: string; crime_type: string; from_at: Date; to_at: Date; free_text: string; subject_id: string; display_name: string; category: string; nearest: number; review: string; id: string }>(
    `SELECT c.crime_ref, c.crime_type, c.from_at, c.to_at, c.free_text, m.subject_id, s.display_name, m.category,
            (SELECT min((f->>'distance_m')::float8) FROM jsonb_array_elements(m.deciding) f) AS nearest, m.review, m.id::text
       FROM crime_matches m JOIN crimes c ON c.id = m.crime_id JOIN subjects s ON s.id = m.subject_id
      WHERE m.run_id = $1 ORDER BY c.row_no, m.category DESC, m.subject_id`,
    [run.id],
  );
  const lines = [HEADER.join(',')];
  for (const x of r.rows) {
    lines.push(
      [x.crime_ref, x.crime_type, x.from_at.toISOString(), x.to_at.toISOString(), x.free_text, x.subject_id, x.display_name, x.category, Math.round(x.nearest * 10) / 10, x.review, x.id]
        .map((v) => csvCell(v))
        .join(','),
    );
  }
  return { ok: true, csv: lines.join('\r\n') + '\r\n', runId: run.id, rows: r.rows.length, crimeRefs: [...new Set(r.rows.map((x) => x.crime_ref))], subjects: [...new Set(r.rows.map((x) => x.subject_id))] };
}

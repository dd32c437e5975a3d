import { withTransaction, type Pool, type Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';

export interface Subject {
  id: string;
  display_name: string;
  cohort: 'fixed' | 'flex' | 'free';
  rag: 'red' | 'amber' | 'green';
  timezone: string;
  offender_manager_ids: string[];
  created_at: Date;
}

export interface Assignment {
  id: string;
  subject_id: string;
  device_id: string;
  start: Date;
  end: Date | null;
}

const SUBJECT_COLS = `id, display_name, cohort, rag, timezone, offender_manager_ids, created_at`;

/**
 * The caseload filter, in SQL: an offender manager sees only subjects that list them; admins
 * and supervisors see all. Returns the WHERE fragment and its parameter, numbered from `n`.
 */
export function caseloadFilter(user: User, n: number, column = 'offender_manager_ids'): { sql: string; params: unknown[] } {
  if (user.role === 'offender_manager') return { sql: `$${n}::text = ANY(${column})`, params: [user.id] };
  if (user.role === 'admin' || user.role === 'supervisor') return { sql: 'true', params: [] };
  return { sql: 'false', params: [] };
}

export async function insertSubject(db: Queryable, s: Omit<Subject, 'created_at'>): Promise<Subject | null> {
  const r = await db.query<Subject>(
    `INSERT INTO subjects (id, display_name, cohort, rag, timezone, offender_manager_ids)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING ${SUBJECT_COLS}`,
    [s.id, s.display_name, s.cohort, s.rag, s.timezone, s.offender_manager_ids],
  );
  return r.rows[0] ?? null;
}

/** Sets the given fields of a subject; null when there is none with this id. */
export async function updateSubjectRow(db: Queryable, id: string, changes: Partial<Omit<Subject, 'id' | 'created_at'>>): Promise<Subject | null> {
  const r = await db.query<Subject>(
    `UPDATE subjects SET display_name = coalesce($2, display_name), cohort = coalesce($3, cohort), rag = coalesce($4, rag),
            timezone = coalesce($5, timezone), offender_manager_ids = coalesce($6, offender_manager_ids)
      WHERE id = $1 RETURNING ${SUBJECT_COLS}`,
    [id, changes.display_name ?? null, changes.cohort ?? null, changes.rag ?? null, changes.timezone ?? null, changes.offender_manager_ids ?? null],
  );
  return r.rows[0] ?? null;
}

/** A subject the user may see, or null (absent or outside their caseload: callers answer 404). */
export async function getSubjectFor(db: Queryable, user: User, id: string): Promise<Subject | null> {
  const f = caseloadFilter(user, 2);
  const r = await db.query<Subject>(`SELECT ${SUBJECT_COLS} FROM subjects WHERE id = $1 AND ${f.sql}`, [id, ...f.params]);
  return r.rows[0] ?? null;
}

export async function listSubjectsFor(db: Queryable, user: User, limit: number, after: string | null): Promise<Subject[]> {
  const f = caseloadFilter(user, 3);
  const r = await db.query<Subject>(
    `SELECT ${SUBJECT_COLS} FROM subjects WHERE ($1::text IS NULL OR id > $1) AND ${f.sql} ORDER BY id LIMIT $2`,
    [after, limit, ...f.params],
  );
  return r.rows;
}

const ASSIGNMENT_COLS = `id::text, subject_id, device_id, start_at AS start, end_at AS "end"`;

export type AssignResult =
  | { ok: true; assignment: Assignment }
  | { ok: false; reason: 'no_subject' | 'no_device' | 'overlap'; detail: string };

/**
 * Fits a device to a subject from `start` (open-ended). A device has at most one assignment at
 * any instant: the device row is locked so two concurrent fittings cannot both pass the check.
 */
export async function assignDevice(pool: Pool, subjectId: string, deviceId: string, start: Date): Promise<AssignResult> {
  return withTransaction(pool, async (tx): Promise<AssignResult> => {
    const subject = await tx.query(`SELECT 1 FROM subjects WHERE id = $1`, [subjectId]);
    if (!subject.rowCount) return { ok: false, reason: 'no_subject', detail: `subject ${subjectId} not found` };
    const device = await tx.query(`SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, [deviceId]);
    if (!device.rowCount) return { ok: false, reason: 'no_device', detail: `device ${deviceId} is not registered` };
    const overlap = await tx.query<{ subject_id: string; start_at: Date }>(
      `SELECT subject_id, start_at FROM assignments
        WHERE device_id = $1 AND coalesce(end_at, 'infinity') > $2 LIMIT 1`,
      [deviceId, start],
    );
    if (overlap.rowCount) {
      const o = overlap.rows[0]!;
      return {
        ok: false,
        reason: 'overlap',
        detail: `device ${deviceId} is fitted to ${o.subject_id} from ${o.start_at.toISOString()} without an end before ${start.toISOString()}`,
      };
    }
    const r = await tx.query<Assignment>(
      `INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, $3) RETURNING ${ASSIGNMENT_COLS}`,
      [subjectId, deviceId, start],
    );
    return { ok: true, assignment: r.rows[0]! };
  });
}

export type EndResult = { ok: true; assignment: Assignment } | { ok: false; status: 404 | 409; detail: string };

export async function endAssignment(db: Queryable, subjectId: string, assignmentId: string, end: Date): Promise<EndResult> {
  if (!/^\d{1,18}$/.test(assignmentId)) return { ok: false, status: 404, detail: `assignment ${assignmentId} not found` };
  const r = await db.query<Assignment>(
    `UPDATE assignments SET end_at = $3 WHERE id = $2::bigint AND subject_id = $1 AND end_at IS NULL AND start_at < $3
     RETURNING ${ASSIGNMENT_COLS}`,
    [subjectId, assignmentId, end],
  );
  if (r.rows[0]) return { ok: true, assignment: r.rows[0] };
  const cur = await db.query<{ end_at: Date | null; start_at: Date }>(
    `SELECT start_at, end_at FROM assignments WHERE id = $2::bigint AND subject_id = $1`,
    [subjectId, assignmentId],
  );
  const row = cur.rows[0];
  if (!row) return { ok: false, status: 404, detail: `assignment ${assignmentId} not found` };
  if (row.end_at) return { ok: false, status: 409, detail: `assignment ${assignmentId} already ended at ${row.end_at.toISOString()}` };
  return { ok: false, status: 409, detail: `end must be after the start ${row.start_at.toISOString()}` };
}

export async function listAssignments(db: Queryable, subjectId: string): Promise<Assignment[]> {
  const r = await db.query<Assignment>(`SELECT ${ASSIGNMENT_COLS} FROM assignments WHERE subject_id = $1 ORDER BY start_at`, [subjectId]);
  return r.rows;
}

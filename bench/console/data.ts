import type { Queryable } from '../../platform/db.js';
import { createSession } from '../../console/sessions.repo.js';

/**
 * What bench:console loads into its fresh database: one person with 7 days of GPS fixes at one
 * a minute (10,080) and a zone; `subjects` people with `alerts` open alerts between them (for a
 * supervisor's inbox); console sessions (the cookie a signed-in browser would carry).
 */

export const TRACK_SUBJECT = 'BENCH-TRACK';
export const TRACK_DEVICE = 'BENCH-TRACK-D';
export const MANAGER = 'om-bench';
/** distinct alert types: at most one open alert per (person, type, zone) is allowed */
const TYPES = ['exclusion_breach', 'curfew_breach', 'curfew_no_fix', 'strap_tamper', 'case_tamper', 'low_battery', 'no_signal', 'no_gps_fix', 'alcohol_interference', 'alcohol_tamper'];
const SEVERITY: Record<string, string> = { exclusion_breach: 'high', curfew_breach: 'high', curfew_no_fix: 'high', strap_tamper: 'high', case_tamper: 'high', alcohol_tamper: 'high', low_battery: 'low', no_signal: 'medium', no_gps_fix: 'medium', alcohol_interference: 'medium' };

/** `fixes` fixes at one a minute ending one minute before `now` (a slow walk round the town centre, accuracy 5–40 m). Returns the first fix's time. */
export async function loadTrack(db: Queryable, fixes: number, now: Date): Promise<Date> {
  const first = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - fixes * 60_000);
  await db.query(`INSERT INTO subjects (id, display_name, cohort, rag, timezone, offender_manager_ids) VALUES ($1, 'Bench Person', 'fixed', 'red', 'Europe/London', $2)`, [TRACK_SUBJECT, [MANAGER]]);
  await db.query(`INSERT INTO devices (id, kind, active) VALUES ($1, 'gps', true)`, [TRACK_DEVICE]);
  await db.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, $3)`, [TRACK_SUBJECT, TRACK_DEVICE, new Date(first.getTime() - 3600_000)]);
  await db.query(
    `INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data)
     SELECT $1, 'gps', t, t + interval '3 seconds', 52.9536 + 0.01 * sin(i / 300.0) + 0.0005 * sin(i / 7.0), -1.1505 + 0.015 * cos(i / 300.0), 5 + (i * 7) % 36, '{}'
       FROM generate_series(0, $3::int - 1) AS i, LATERAL (SELECT $2::timestamptz + i * interval '1 minute' AS t) x`,
    [TRACK_DEVICE, first, fixes],
  );
  await db.query(
    `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, schedule, exceptions, grace_s, created_by)
     VALUES ($1, 'inclusion', 'Home', '{"type":"Point","coordinates":[-1.1505,52.9536]}', 60, '[{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"19:00","end":"07:00"}]', '[]', 60, 'bench')`,
    [TRACK_SUBJECT],
  );
  return first;
}

/** `subjects` people (managed by other managers) and `alerts` open alerts spread over them, raised over the last `alerts` minutes. */
export async function loadInbox(db: Queryable, subjects: number, alerts: number): Promise<void> {
  if (alerts > subjects * TYPES.length) throw new Error(`${alerts} open alerts need at least ${Math.ceil(alerts / TYPES.length)} people (one open alert per person and type)`);
  await db.query(
    `INSERT INTO subjects (id, display_name, cohort, rag, timezone, offender_manager_ids)
     SELECT 'BENCH-IN-' || lpad(i::text, 5, '0'), 'Inbox Person ' || i, 'fixed', (ARRAY['red','amber','green'])[1 + i % 3], 'Europe/London', ARRAY['om-' || (i % 40)]
       FROM generate_series(0, $1::int - 1) AS i`,
    [subjects],
  );
  await db.query(
    `INSERT INTO alerts (type, severity, subject_id, started_at, raised_at, per_event, review_status)
     SELECT ($2::text[])[1 + k / $1], ($3::text[])[1 + k / $1], 'BENCH-IN-' || lpad((k % $1)::text, 5, '0'),
            now() - k * interval '1 minute', now() - k * interval '1 minute' + interval '5 seconds', false,
            CASE WHEN ($2::text[])[1 + k / $1] = 'alcohol_tamper' THEN 'pending' END
       FROM generate_series(0, $4::int - 1) AS k`,
    [subjects, TYPES, TYPES.map((t) => SEVERITY[t]), alerts],
  );
}

/** A console session of `role` (what signing in leaves in the database); its cookie value. */
export async function sessionToken(db: Queryable, id: string, role: 'offender_manager' | 'supervisor'): Promise<string> {
  return (await createSession(db, { id, role }, new Date())).token;
}

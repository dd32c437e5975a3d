import type { TxClient } from '../platform/db.js';
import { raiseAlert } from '../alerts/alerts.repo.js';
import type { AlertType } from '../alerts/rules.js';
import type { CrimeRecord, MatchRecord } from './crime.repo.js';

/**
 * The review of a crime match (contract §8) and the `crime_proximity` alert a confirmed match
 * raises (§5: medium; each match its own alert). The alert's identity is the match
 * (`alerts.crime_match_id`, unique): two confirmed matches of one subject are two alerts even
 * when their windows start at the same instant, and a match is never alerted twice.
 */

const TYPE: AlertType = 'crime_proximity';

export type ReviewOutcome = { ok: true; match: MatchRecord; alertId: string | null } | { ok: false; status: 404 | 409; detail: string };

/** Evidence of a crime_proximity alert: the crime (reference, type, window, place) and the deciding fixes. */
export function crimeEvidence(crime: CrimeRecord, m: MatchRecord): unknown[] {
  return [
    {
      kind: 'crime',
      crime_id: String(crime.id),
      crime_ref: crime.crime_ref,
      crime_type: crime.crime_type,
      force: crime.force,
      window: { from: crime.from_at.toISOString(), to: crime.to_at.toISOString() },
      location: { lat: crime.lat, lon: crime.lon },
      category: m.category,
      match_id: String(m.id),
      run_id: String(m.run_id),
    },
    ...(m.deciding as Array<Record<string, unknown>>).map((f) => ({ kind: 'fix', ...f })),
  ];
}

/**
 * Records a review once (a match reviewed before is 409) and, when confirmed, raises the alert in
 * the same transaction (`db` is the transaction's client), delivered through the alert feed like
 * every alert (the alert_events row is announced after commit).
 */
export async function reviewMatch(db: TxClient, matchId: string, decision: 'confirmed' | 'rejected', by: string, note: string | null): Promise<ReviewOutcome> {
  const m = (await db.query<MatchRecord>(`SELECT m.*, s.display_name FROM crime_matches m JOIN subjects s ON s.id = m.subject_id WHERE m.id = $1 FOR UPDATE OF m`, [matchId])).rows[0];
  if (!m) return { ok: false, status: 404, detail: `crime match ${matchId} not found` };
  if (m.review !== 'pending') return { ok: false, status: 409, detail: `crime match ${matchId} was already reviewed (${m.review})` };
  const updated = await db.query<MatchRecord>(
    `UPDATE crime_matches SET review = $2, reviewed_by = $3, reviewed_at = now(), review_note = $4 WHERE id = $1 RETURNING *`,
    [matchId, decision, by, note],
  );
  const match = { ...updated.rows[0]!, display_name: m.display_name };
  if (decision !== 'confirmed') return { ok: true, match, alertId: null };
  const crime = (await db.query<CrimeRecord>(`SELECT * FROM crimes WHERE id = $1`, [m.crime_id])).rows[0]!;
  const deviceId = ((m.deciding as Array<{ device_id?: string }>)[0]?.device_id as string | undefined) ?? null;
  const raised = await raiseAlert(db, {
    type: TYPE,
    subjectId: m.subject_id,
    deviceId,
    zoneId: null,
    startedAt: crime.from_at,
    late: false,
    evidence: crimeEvidence(crime, m),
    crimeMatchId: matchId,
    raisedBy: { actor: by, note: `crime match confirmed: ${crime.crime_ref}` },
  });
  if (raised.outcome !== 'raised') throw new Error(`crime match ${matchId}: its alert was not raised (${raised.outcome})`);
  const alertId = raised.alert.id;
  await db.query(`UPDATE crime_matches SET alert_id = $2 WHERE id = $1`, [matchId, alertId]);
  return { ok: true, match: { ...match, alert_id: alertId }, alertId };
}

import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { getAlertFor } from './lifecycle.repo.js';
import { isReviewed, REVIEWED_TYPES, type ReviewDecision } from './rules.js';

/**
 * Review of drinking events and alcohol tampers (contract 1.1 §4, §6): a person holding the review
 * role marks an alert `confirmed` or `not_confirmed`, with a note. A later review replaces the
 * decision (a second look, a lab result); the alert's history keeps every one. A review does not
 * change the workflow status (open, acknowledged, resolved): an alert is reviewed before or after
 * it is resolved. The caller holds the subject's alcohol lock and runs this in a transaction.
 */

export interface ReviewedAlert {
  id: string;
  subject_id: string;
  type: string;
  started_at: Date;
  ended_at: Date | null;
}

export type ReviewResult = { ok: true; alert: ReviewedAlert } | { ok: false; status: 404 | 409; detail: string };

/** The alert as the user may see it (their caseload), if its type is reviewed. */
export async function reviewableAlert(db: Queryable, user: User, id: string): Promise<ReviewResult> {
  const a = await getAlertFor(db, user, id);
  if (!a) return { ok: false, status: 404, detail: `alert ${id} not found` };
  if (!isReviewed(a.type as string)) return { ok: false, status: 409, detail: `alert ${id} is a ${a.type as string}: only ${REVIEWED_TYPES.join(' and ')} alerts are reviewed` };
  return { ok: true, alert: a as unknown as ReviewedAlert };
}

/** Records a decision on the alert and one `reviewed` line in its history ("<decision>[: note]"). */
export async function recordReview(db: Queryable, alertId: string, userId: string, decision: ReviewDecision, note: string | null): Promise<void> {
  await db.query(
    `WITH upd AS (
       UPDATE alerts SET review_status = $2, reviewed_by = $3, reviewed_at = now(), review_note = $4, updated_at = now()
        WHERE id = $1 AND review_status IS NOT NULL RETURNING id)
     INSERT INTO alert_events (alert_id, actor, action, note) SELECT id, $3, 'reviewed', $5 FROM upd`,
    [alertId, decision, userId, note, note ? `${decision}: ${note}` : decision],
  );
}

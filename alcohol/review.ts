import { DateTime } from 'luxon';
import { lockKeys, type Queryable, type TxClient } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { recordReview, reviewableAlert, type ReviewResult } from '../alerts/review.repo.js';
import type { ReviewDecision } from '../alerts/rules.js';
import { localDays, reviewDay } from './days.js';
import { loadDayInputs, loadEventReviews, saveReviewedDays } from './alcohol.repo.js';

/**
 * A review decision and what it changes (contract 1.1 §4): the alert's review, and the reviewed
 * figures of the stored days its event touches, reclassified from each day's stored events and
 * coverage with the parameters that day was computed with (pure `reviewDay`), with the month
 * rollup. The automatic figures are left as they are. Runs inside the caller's transaction and
 * takes the subject's alcohol lock, the one the evaluate job holds while it writes days.
 */
export async function reviewInTransaction(db: TxClient, user: User, alertId: string, decision: ReviewDecision, note: string | null): Promise<ReviewResult> {
  const found = await reviewableAlert(db, user, alertId);
  if (!found.ok) return found;
  const a = found.alert;
  await lockKeys(db, 'alcohol-subject:', [a.subject_id]);
  await recordReview(db, a.id, user.id, decision, note);
  await reclassifyReviewedDays(db, a.subject_id, a.started_at, a.ended_at ?? a.started_at);
  return found;
}

/** Recomputes the reviewed figures of the subject's stored days touching [from, to] (device time). */
export async function reclassifyReviewedDays(db: Queryable, subjectId: string, from: Date, to: Date): Promise<number> {
  const tz = (await db.query<{ timezone: string }>(`SELECT timezone FROM subjects WHERE id = $1`, [subjectId])).rows[0]?.timezone;
  if (!tz) return 0;
  const firstDate = DateTime.fromJSDate(from, { zone: tz }).toISODate()!;
  const lastDate = DateTime.fromJSDate(to, { zone: tz }).toISODate()!;
  const stored = (await loadDayInputs(db, subjectId, firstDate, lastDate)).filter((d) => d.events !== null);
  if (stored.length === 0) return 0;
  const calendar = new Map(localDays(firstDate, DateTime.fromISO(lastDate).plus({ days: 1 }).toISODate()!, tz).map(([d, s, e]) => [d, [s, e] as const]));
  const spanStart = calendar.get(stored[0]!.date)![0];
  const spanEnd = calendar.get(stored[stored.length - 1]!.date)![1];
  const reviews = await loadEventReviews(db, subjectId, new Date(spanStart), new Date(spanEnd));
  const updated = stored.map((d) => {
    const [start, end] = calendar.get(d.date)!;
    return { date: d.date, ...reviewDay(d.events!, d.covered_minutes, start, end, reviews, d.params) };
  });
  await saveReviewedDays(db, subjectId, updated);
  return updated.length;
}

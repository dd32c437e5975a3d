/**
 * Alert types and their severities (contract §5). Pure.
 */
export const ALERT_TYPES = [
  'exclusion_breach',
  'curfew_breach',
  'curfew_no_fix',
  'drinking_event',
  'alcohol_interference',
  'alcohol_tamper',
  'strap_tamper',
  'case_tamper',
  'low_battery',
  'no_signal',
  'no_gps_fix',
  'crime_proximity',
] as const;
export type AlertType = (typeof ALERT_TYPES)[number];
export type Severity = 'high' | 'medium' | 'low';

/** High: a likely breach of a requirement or an attack on the tag; medium: needs a look; low: housekeeping. */
export const SEVERITY: Record<AlertType, Severity> = {
  exclusion_breach: 'high',
  curfew_breach: 'high',
  curfew_no_fix: 'medium',
  drinking_event: 'high',
  alcohol_interference: 'low',
  alcohol_tamper: 'high',
  strap_tamper: 'high',
  case_tamper: 'medium',
  low_battery: 'low',
  no_signal: 'medium',
  no_gps_fix: 'medium',
  crime_proximity: 'medium',
};

/**
 * A reading received this long after its device time arrived late: the same 15 minutes of
 * silence that make a `no_signal`, so a tag's stored readings sent after a gap are late.
 */
export const LATE_RECEIPT_MS = 15 * 60_000;

/**
 * Whether an alert proven by the reading at `provenAt` (device time) was found through readings
 * that arrived late (contract §3): that reading came after later ones had been evaluated (at or
 * before the watermark), or it was received more than LATE_RECEIPT_MS after its device time.
 * Decided from stored facts only (device and receipt times), so it is reproducible.
 */
export function isLate(provenAt: number, receivedAt: number | undefined, watermark: number | null): boolean {
  return (watermark !== null && provenAt <= watermark) || (receivedAt !== undefined && receivedAt - provenAt > LATE_RECEIPT_MS);
}

/**
 * Types whose every event is its own alert (contract 1.1 §5): they are exempt from the
 * one-open-alert-per-(subject, type, zone) rule because each event is reviewed alone. The one
 * list: raiseAlert marks such alerts `per_event`, and the database's one-open index skips them.
 * `crime_proximity` (§8) is listed ahead of its type existing here.
 */
export const PER_EVENT_TYPES: readonly string[] = ['drinking_event', 'alcohol_tamper', 'crime_proximity'];

/** Types a person reviews (contract 1.1 §4): `pending` when raised, then confirmed or not confirmed. */
export const REVIEWED_TYPES = ['drinking_event', 'alcohol_tamper'] as const;
export type ReviewedType = (typeof REVIEWED_TYPES)[number];
export type ReviewStatus = 'pending' | 'confirmed' | 'not_confirmed';
export type ReviewDecision = Exclude<ReviewStatus, 'pending'>;

export function isReviewed(type: string): type is ReviewedType {
  return (REVIEWED_TYPES as readonly string[]).includes(type);
}

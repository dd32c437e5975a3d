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
};

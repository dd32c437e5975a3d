import { DateTime } from 'luxon';
import { LATE_RECEIPT_MS } from '../alerts/rules.js';

/** Words for what the pages show; pure. Severity is always written out, never shown by colour alone. */
const TYPE_NAMES: Record<string, string> = {
  exclusion_breach: 'Entered an exclusion zone',
  curfew_breach: 'Away from the curfew address',
  curfew_no_fix: 'No location during curfew',
  drinking_event: 'Drinking event',
  alcohol_interference: 'Alcohol reading interference',
  alcohol_tamper: 'Alcohol tag tamper',
  strap_tamper: 'Strap tamper',
  case_tamper: 'Tag case opened',
  low_battery: 'Low battery',
  no_signal: 'No signal from the tag',
  no_gps_fix: 'No GPS fix',
  crime_proximity: 'Near a reported crime',
};
const SEVERITY_TAGS: Record<string, string> = { high: 'govuk-tag--red', medium: 'govuk-tag--orange', low: 'govuk-tag--grey' };
const STATUS_TAGS: Record<string, string> = { open: 'govuk-tag--red', acknowledged: 'govuk-tag--yellow', resolved: 'govuk-tag--green' };

export interface AlertView {
  typeName: string;
  severityText: string;
  severityClass: string;
  statusText: string;
  statusClass: string;
}

export function alertView(a: { type: string; severity: string; status?: string }): AlertView {
  return {
    typeName: TYPE_NAMES[a.type] ?? a.type,
    severityText: a.severity.charAt(0).toUpperCase() + a.severity.slice(1),
    severityClass: SEVERITY_TAGS[a.severity] ?? 'govuk-tag--grey',
    statusText: a.status ? a.status.charAt(0).toUpperCase() + a.status.slice(1) : '',
    statusClass: STATUS_TAGS[a.status ?? ''] ?? 'govuk-tag--grey',
  };
}

/** What `late` means for this alert, in words (null when it was not late). */
export function lateText(a: { late: boolean }): string | null {
  if (!a.late) return null;
  const minutes = LATE_RECEIPT_MS / 60_000;
  return (
    `This alert was raised late. The reading that proved it reached the service more than ${minutes} minutes after the tag recorded it ` +
    '(or after later readings had already been checked), for example because the tag was out of signal and sent its stored readings afterwards. ' +
    'The breach happened at the device times shown below, not when the alert was raised.'
  );
}

/** A time for people: UK local time with its zone, e.g. "3 Dec 2026, 14:05:09 GMT". */
export function displayTime(value: unknown): string {
  if (value === null || value === undefined || value === '') return '';
  const d = value instanceof Date ? DateTime.fromJSDate(value) : DateTime.fromISO(String(value));
  return d.isValid ? d.setZone('Europe/London').toFormat('d LLL yyyy, HH:mm:ss ZZZZ') : String(value);
}

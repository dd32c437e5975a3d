/**
 * Tag health rules (contract §5). Pure. Status readings in device-time order change a device's
 * health state; a change from fine to not fine raises an alert, the way back ends (or, for
 * low battery, automatically resolves) it. Absence rules compare server-clock receipt times
 * with `now` (epoch ms), so a burst of stored readings after a gap never hides the gap.
 */

export const NO_SIGNAL_MS = 15 * 60_000;
export const NO_GPS_FIX_MS = 30 * 60_000;
export const LOW_BATTERY_PCT = 15;
export const BATTERY_RECOVERED_PCT = 30;

export interface HealthState {
  strap_open: boolean;
  case_open: boolean;
  battery_low: boolean;
  battery_pct: number | null;
}

export interface StatusIn {
  ts: number;
  battery_pct: number;
  strap?: 'ok' | 'open';
  case?: 'ok' | 'open';
  event?: string;
}

export type HealthChange =
  | { kind: 'raise'; type: 'strap_tamper' | 'case_tamper' | 'low_battery'; ts: number; evidence: StatusIn }
  | { kind: 'end'; type: 'strap_tamper' | 'case_tamper'; ts: number }
  | { kind: 'resolve'; type: 'low_battery'; ts: number; reason: string };

export function applyStatus(state: HealthState, readings: StatusIn[]): { state: HealthState; changes: HealthChange[] } {
  const s = { ...state };
  const changes: HealthChange[] = [];
  for (const r of [...readings].sort((a, b) => a.ts - b.ts)) {
    const strapOpen = r.strap === 'open' || r.event === 'strap_tamper' ? true : r.strap === 'ok' ? false : s.strap_open;
    if (strapOpen && !s.strap_open) changes.push({ kind: 'raise', type: 'strap_tamper', ts: r.ts, evidence: r });
    if (!strapOpen && s.strap_open) changes.push({ kind: 'end', type: 'strap_tamper', ts: r.ts });
    s.strap_open = strapOpen;
    const caseOpen = r.case === 'open' || r.event === 'case_tamper' ? true : r.case === 'ok' ? false : s.case_open;
    if (caseOpen && !s.case_open) changes.push({ kind: 'raise', type: 'case_tamper', ts: r.ts, evidence: r });
    if (!caseOpen && s.case_open) changes.push({ kind: 'end', type: 'case_tamper', ts: r.ts });
    s.case_open = caseOpen;
    if (!s.battery_low && (r.battery_pct <= LOW_BATTERY_PCT || r.event === 'low_battery')) {
      s.battery_low = true;
      changes.push({ kind: 'raise', type: 'low_battery', ts: r.ts, evidence: r });
    } else if (s.battery_low && r.battery_pct > BATTERY_RECOVERED_PCT) {
      s.battery_low = false;
      changes.push({ kind: 'resolve', type: 'low_battery', ts: r.ts, reason: `battery charged to ${r.battery_pct} %` });
    }
    s.battery_pct = r.battery_pct;
  }
  return { state: s, changes };
}

export interface Presence {
  /** server time the last reading of any stream was received, or when the device was fitted */
  lastReceived: number;
  /** server time the last fix was received, or when the device was fitted */
  lastGpsReceived: number;
  /** server time the last status reading was received, or null */
  lastStatusReceived: number | null;
  gpsCapable: boolean;
}

/** Which absence conditions hold at `now`. */
export function absence(p: Presence, now: number): { no_signal: boolean; no_gps_fix: boolean } {
  const noSignal = now - p.lastReceived >= NO_SIGNAL_MS;
  const noFix = p.gpsCapable && !noSignal && p.lastStatusReceived !== null && now - p.lastStatusReceived < NO_GPS_FIX_MS && now - p.lastGpsReceived >= NO_GPS_FIX_MS;
  return { no_signal: noSignal, no_gps_fix: noFix };
}

import type { DayResult } from './days.js';

/**
 * The sober-day rate (contract §4): sober days / monitored days (sober + drinking + tamper),
 * with the 95 % Wilson score interval. Pure. No monitored day: rate and interval are null.
 */
export interface SoberRate {
  sober_days: number;
  monitored_days: number;
  rate: number | null;
  ci95: [number, number] | null;
}

const Z = 1.959963984540054;

export function wilson(successes: number, n: number): [number, number] | null {
  if (n === 0) return null;
  const p = successes / n;
  const z2 = Z * Z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (Z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

export function soberRate(sober: number, monitored: number): SoberRate {
  return { sober_days: sober, monitored_days: monitored, rate: monitored ? sober / monitored : null, ci95: wilson(sober, monitored) };
}

export function rateOfDays(days: Array<Pick<DayResult, 'status'>>): SoberRate {
  const sober = days.filter((d) => d.status === 'sober').length;
  const monitored = days.filter((d) => d.status !== 'not_monitored').length;
  return soberRate(sober, monitored);
}

/** The reviewed figures of contract 1.1 §4: the same rate over the days' reviewed statuses. */
export interface ReviewedRate {
  reviewed_sober_days: number;
  reviewed_monitored_days: number;
  reviewed_rate: number | null;
  reviewed_ci95: [number, number] | null;
}

export function reviewedRate(sober: number, monitored: number): ReviewedRate {
  const r = soberRate(sober, monitored);
  return { reviewed_sober_days: r.sober_days, reviewed_monitored_days: r.monitored_days, reviewed_rate: r.rate, reviewed_ci95: r.ci95 };
}

/** Both sets of figures and the events pending review, from day results. */
export function ratesOfDays(days: Array<Pick<DayResult, 'status' | 'reviewed_status' | 'pending_events'>>): SoberRate & ReviewedRate & { pending_events: number } {
  const sober = days.filter((d) => d.reviewed_status === 'sober').length;
  const monitored = days.filter((d) => d.reviewed_status !== 'not_monitored').length;
  return { ...rateOfDays(days), ...reviewedRate(sober, monitored), pending_events: days.reduce((a, d) => a + d.pending_events, 0) };
}

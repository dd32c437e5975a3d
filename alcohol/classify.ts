import { findEvents, type AlcoholEvent } from './events.js';
import { findObstructions, type Obstruction } from './tamper.js';
import { classifyDays, localDays, type DayResult, type EventReview, type Interval } from './days.js';
import type { AlcoholParams } from './params.js';

export interface AlcoholReadingIn {
  /** device time, epoch ms */
  ts: number;
  /** g/dL */
  tac: number;
  /** °C */
  temp_c: number;
  /** V; NaN or undefined when the tag does not report it */
  ir?: number;
}

export interface Classification {
  events: AlcoholEvent[];
  tampers: Obstruction[];
  days: DayResult[];
}

/**
 * Classifies one subject's alcohol readings (any order: sorted here by device time; repeated
 * identities must already be removed) over the local days [fromDate, toDate) in `timezone`.
 * `reviews` are the review decisions on the subject's alerted events (contract 1.1 §4): they
 * give the days' reviewed figures, never the automatic ones. Pure and deterministic: the same
 * readings, parameters and reviews give the same result.
 */
export function classifySubject(
  readings: AlcoholReadingIn[],
  fitted: Interval[],
  fromDate: string,
  toDate: string,
  timezone: string,
  p: AlcoholParams,
  reviews: EventReview[] = [],
): Classification {
  const sorted = [...readings].sort((a, b) => a.ts - b.ts);
  const n = sorted.length;
  const ts = new Float64Array(n);
  const tac = new Float64Array(n);
  const ir = new Float64Array(n);
  const temp = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = sorted[i]!;
    ts[i] = r.ts;
    tac[i] = r.tac;
    ir[i] = r.ir ?? NaN;
    temp[i] = r.temp_c;
  }
  const events = findEvents(ts, tac, p);
  const tampers = findObstructions(ts, ir, temp, p);
  const days = classifyDays(ts, localDays(fromDate, toDate, timezone), fitted, events, tampers, p, reviews);
  return { events, tampers, days };
}

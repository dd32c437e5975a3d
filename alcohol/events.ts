import type { AlcoholParams } from './params.js';

/**
 * Drinking events and interference spikes from TAC (contract §4). Pure. Input is one subject's
 * readings in device-time order: `ts` epoch ms, `tac` g/dL.
 *
 * A TAC run is a sequence of readings at or above the threshold in which one reading below it
 * does not break the run (two consecutive ones do). A run with at least `event_min_readings`
 * positive readings spanning at least `event_min_minutes` is a drinking event (first to last
 * positive reading, peak = highest TAC); a run that ends shorter is interference. A run still
 * going at the last reading is a drinking event once it qualifies, and undecided until then.
 */

export interface AlcoholEvent {
  kind: 'drinking' | 'interference';
  /** device time of the first and last positive reading, epoch ms */
  start: number;
  end: number;
  /** g/dL */
  peak: number;
  positives: number;
  /** indexes of the run's readings (first positive to last positive) in the input */
  from: number;
  to: number;
  /** the run had not ended at the last reading */
  ongoing: boolean;
}

export function findEvents(ts: ArrayLike<number>, tac: ArrayLike<number>, p: AlcoholParams): AlcoholEvent[] {
  const out: AlcoholEvent[] = [];
  const minSpan = p.event_min_minutes * 60_000;
  let first = -1;
  let last = -1;
  let positives = 0;
  let peak = 0;
  let lows = 0;
  const close = (ongoing: boolean) => {
    const qualifies = positives >= p.event_min_readings && ts[last]! - ts[first]! >= minSpan;
    if (qualifies || !ongoing) {
      out.push({ kind: qualifies ? 'drinking' : 'interference', start: ts[first]!, end: ts[last]!, peak, positives, from: first, to: last, ongoing });
    }
    first = -1;
    positives = 0;
    peak = 0;
    lows = 0;
  };
  for (let i = 0; i < ts.length; i++) {
    const v = tac[i]!;
    if (v >= p.tac_threshold) {
      if (first < 0) first = i;
      last = i;
      positives++;
      if (v > peak) peak = v;
      lows = 0;
    } else if (first >= 0 && ++lows >= 2) {
      close(false);
    }
  }
  if (first >= 0) close(true);
  return out;
}

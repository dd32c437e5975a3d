import type { AlcoholParams } from './params.js';

/**
 * Obstructions and removals (contract §4). Pure. The wearer's baseline at each reading is the
 * median IR and median temperature of their readings in the preceding `baseline_hours` (the
 * reading itself excluded), from at least `baseline_min_readings` readings; before that no
 * tamper is decided. A reading is abnormal when its IR is below `ir_low_ratio` or above
 * `ir_high_ratio` times the baseline IR. Consecutive abnormal readings spanning at least
 * `obstruction_min_minutes` are an obstruction; it is a removal when the median of its readings'
 * temperature drops below their baselines exceeds `removal_temp_drop_c`. A reading without IR
 * or without a baseline ends a run.
 */

export interface Obstruction {
  kind: 'obstruction' | 'removal';
  /** device time of the first and last abnormal reading, epoch ms */
  start: number;
  end: number;
  from: number;
  to: number;
  /** baseline IR (V) and temperature (°C) at the first abnormal reading */
  baseline_ir: number;
  baseline_temp_c: number;
  ongoing: boolean;
}

/** A sorted multiset of numbers for a sliding-window median. */
class SortedWindow {
  private v: number[] = [];
  add(x: number): void {
    this.v.splice(this.lower(x), 0, x);
  }
  remove(x: number): void {
    const i = this.lower(x);
    if (this.v[i] === x) this.v.splice(i, 1);
  }
  get size(): number {
    return this.v.length;
  }
  median(): number {
    const n = this.v.length;
    const m = n >> 1;
    return n % 2 ? this.v[m]! : (this.v[m - 1]! + this.v[m]!) / 2;
  }
  private lower(x: number): number {
    let lo = 0;
    let hi = this.v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.v[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export function findObstructions(
  ts: ArrayLike<number>,
  ir: ArrayLike<number>,
  temp: ArrayLike<number>,
  p: AlcoholParams,
): Obstruction[] {
  const out: Obstruction[] = [];
  const windowMs = p.baseline_hours * 3600_000;
  const minSpan = p.obstruction_min_minutes * 60_000;
  const irs = new SortedWindow();
  const temps = new SortedWindow();
  let tail = 0; // first reading still inside the window
  let first = -1;
  let drops: number[] = [];
  let baseIr = 0;
  let baseTemp = 0;
  const close = (last: number, ongoing: boolean) => {
    if (ts[last]! - ts[first]! >= minSpan) {
      drops.sort((a, b) => a - b);
      const mid = drops.length >> 1;
      const medianDrop = drops.length % 2 ? drops[mid]! : (drops[mid - 1]! + drops[mid]!) / 2;
      out.push({
        kind: medianDrop > p.removal_temp_drop_c ? 'removal' : 'obstruction',
        start: ts[first]!,
        end: ts[last]!,
        from: first,
        to: last,
        baseline_ir: baseIr,
        baseline_temp_c: baseTemp,
        ongoing,
      });
    }
    first = -1;
    drops = [];
  };
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    while (tail < i && ts[tail]! < t - windowMs) {
      if (!Number.isNaN(ir[tail]!)) irs.remove(ir[tail]!);
      temps.remove(temp[tail]!);
      tail++;
    }
    const hasIr = !Number.isNaN(ir[i]!);
    let abnormal = false;
    if (hasIr && irs.size >= p.baseline_min_readings) {
      const bIr = irs.median();
      abnormal = ir[i]! < p.ir_low_ratio * bIr || ir[i]! > p.ir_high_ratio * bIr;
      if (abnormal) {
        const bTemp = temps.median();
        if (first < 0) {
          first = i;
          baseIr = bIr;
          baseTemp = bTemp;
        }
        drops.push(bTemp - temp[i]!);
      }
    }
    if (!abnormal && first >= 0) close(i - 1, false);
    if (hasIr) irs.add(ir[i]!);
    temps.add(temp[i]!);
  }
  if (first >= 0) close(ts.length - 1, true);
  return out;
}

import { createHash } from 'node:crypto';

/**
 * The rule parameters of contract §4, with their defaults. A deployment may change them; every
 * day result stores the parameters that produced it (by content hash), so a figure can be
 * reproduced later.
 */
export interface AlcoholParams {
  /** g/dL: a reading at or above this is positive */
  tac_threshold: number;
  /** readings at or above the threshold an event needs */
  event_min_readings: number;
  /** minutes from the first to the last positive reading an event needs */
  event_min_minutes: number;
  /** hours of preceding readings in the wearer's baseline */
  baseline_hours: number;
  /** readings the baseline needs before any tamper is decided */
  baseline_min_readings: number;
  /** IR below this multiple of the baseline IR is abnormal */
  ir_low_ratio: number;
  /** IR above this multiple of the baseline IR is abnormal */
  ir_high_ratio: number;
  /** minutes an abnormal-IR run must span to be an obstruction */
  obstruction_min_minutes: number;
  /** °C below the baseline temperature that makes an obstruction a removal */
  removal_temp_drop_c: number;
  /** hours of a local day readings must cover for a monitored day */
  monitored_min_hours: number;
  /** minutes between readings beyond which the gap is not covered */
  max_gap_minutes: number;
}

export const DEFAULT_PARAMS: AlcoholParams = {
  tac_threshold: 0.02,
  event_min_readings: 3,
  event_min_minutes: 60,
  baseline_hours: 24,
  baseline_min_readings: 6,
  ir_low_ratio: 0.5,
  ir_high_ratio: 2,
  obstruction_min_minutes: 120,
  removal_temp_drop_c: 5,
  monitored_min_hours: 20,
  max_gap_minutes: 90,
};

/** Stable id of a parameter set: the first 16 hex digits of the SHA-256 of its canonical JSON. */
export function paramsVersion(p: AlcoholParams): string {
  const canonical = JSON.stringify(Object.keys(p).sort().map((k) => [k, p[k as keyof AlcoholParams]]));
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** The defaults overridden by a deployment's JSON (`ALCOHOL_PARAMS`); unknown or non-numeric keys are refused. */
export function paramsFrom(json: string | undefined): AlcoholParams {
  if (!json) return DEFAULT_PARAMS;
  const o = JSON.parse(json) as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    if (!(k in DEFAULT_PARAMS)) throw new Error(`ALCOHOL_PARAMS: unknown parameter ${k}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`ALCOHOL_PARAMS: ${k} must be a number >= 0`);
  }
  return { ...DEFAULT_PARAMS, ...(o as Partial<AlcoholParams>) };
}

import { rngFor, type Rng } from './rng.js';

/**
 * Transdermal alcohol as a SCRAM-style ankle tag reports it, shaped on the real recordings in
 * data/barcrawl/: mostly 0.000, an evening's drinking that rises over hours and is eliminated
 * overnight at 0.010-0.020 g/dL per hour, raw values that jump (0.047, 0.000, 0.155), IR that
 * holds a value for hours (0.7-1.8 V) and skin temperature that wanders (19-38 °C). Pure: time
 * is a parameter (epoch ms); randomness comes from the key and the time.
 */

const H = 3_600_000;

export interface Drinker {
  kind: 'abstinent' | 'occasional' | 'heavy';
  /** the wearer's usual IR proximity voltage, V */
  irBase: number;
  /** the wearer's skin runs this much warmer or cooler, °C */
  tempOffset: number;
}

export function drinkerFor(rng: Rng): Drinker {
  const r = rng.next();
  return {
    kind: r < 0.3 ? 'abstinent' : r < 0.8 ? 'occasional' : 'heavy',
    irBase: rng.range(0.85, 1.3),
    tempOffset: rng.range(-2, 2),
  };
}

/** An evening's drinking as a true TAC curve (g/dL over epoch ms). */
export interface Episode {
  /** first drink */
  start: number;
  /** from the first drink until alcohol reaches the skin */
  onsetMs: number;
  riseMs: number;
  peak: number;
  plateauMs: number;
  /** elimination rate, g/dL per hour */
  elimPerH: number;
}

/**
 * Whether the wearer drinks on a local day starting at `dayStart` (weekday 1 = Monday … 7 =
 * Sunday; Friday and Saturday nearly twice as likely), and if so the curve: first drink
 * 18:00-21:00, peak 0.06-0.25 g/dL reached 2.5-5 h later.
 */
export function drinkingEpisode(d: Drinker, dayStart: number, weekday: number, rng: Rng): Episode | null {
  const p = { abstinent: 0, occasional: 0.1, heavy: 0.3 }[d.kind] * (weekday === 5 || weekday === 6 ? 1.8 : 1);
  if (!rng.chance(p)) return null;
  return {
    start: dayStart + Math.round(rng.range(18, 21) * H),
    onsetMs: Math.round(rng.range(0.5, 1) * H),
    riseMs: Math.round(rng.range(2, 4) * H),
    peak: d.kind === 'heavy' ? rng.range(0.08, 0.25) : rng.range(0.06, 0.15),
    plateauMs: Math.round(rng.range(0.3, 1) * H),
    elimPerH: rng.range(0.01, 0.02),
  };
}

/** True TAC at `t` (g/dL, 0 outside the episode). */
export function episodeTac(e: Episode, t: number): number {
  let x = t - e.start - e.onsetMs;
  if (x <= 0) return 0;
  if (x < e.riseMs) {
    const f = x / e.riseMs;
    return e.peak * f * f * (3 - 2 * f);
  }
  x -= e.riseMs;
  if (x < e.plateauMs) return e.peak;
  return Math.max(0, e.peak - (e.elimPerH * (x - e.plateauMs)) / H);
}

/** Alcohol is reaching the skin and rising: the tag samples every 5 minutes instead of 30. */
export function isRising(e: Episode, t: number): boolean {
  const x = t - e.start - e.onsetMs;
  return x > 0 && x < e.riseMs;
}

/** The last moment the episode's true TAC is above zero. */
export function episodeEnd(e: Episode): number {
  return e.start + e.onsetMs + e.riseMs + e.plateauMs + Math.ceil((e.peak / e.elimPerH) * H);
}

/** A short spike from something on the skin (hand sanitiser, aftershave): comes and goes within the hour. */
export interface Spike {
  at: number;
  lenMs: number;
  level: number;
}

export function spikeFor(dayStart: number, rng: Rng): Spike | null {
  if (!rng.chance(0.05)) return null;
  return { at: dayStart + Math.round(rng.range(8, 20) * H), lenMs: Math.round(rng.range(15, 40) * 60_000), level: rng.range(0.02, 0.06) };
}

/** Something between skin and sensor for a few hours (IR falls to about a third). */
export interface Obstruction {
  from: number;
  to: number;
}

export function obstructionFor(dayStart: number, rng: Rng): Obstruction | null {
  if (!rng.chance(0.01)) return null;
  const from = dayStart + Math.round(rng.range(9, 18) * H);
  return { from, to: from + Math.round(rng.range(2.5, 4) * H) };
}

const round = (x: number, dp: number) => Math.round(x * 10 ** dp) / 10 ** dp;
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * What the sensor reports for a true TAC (g/dL, 3 decimals, 0..1): multiplicative noise, a
 * reading that drops out now and then, and small non-zero readings when sober.
 */
export function observeTac(trueTac: number, rng: Rng): number {
  if (trueTac <= 0.002) return rng.chance(0.1) ? round(rng.range(0.001, 0.013), 3) : 0;
  let v = trueTac * Math.exp(0.3 * rng.normal()) + 0.004 * rng.normal();
  if (rng.chance(0.07)) v *= rng.range(0, 0.35);
  return round(clamp(v, 0, 1), 3);
}

/** Skin temperature, °C (2 decimals, 19-38): warmest about 03:00 under the covers, coolest mid-afternoon. */
export function skinTempC(d: Drinker, localHour: number, rng: Rng): number {
  const base = 29 + 3.5 * Math.cos((2 * Math.PI * (localHour - 3)) / 24);
  return round(clamp(base + d.tempOffset + 1.5 * rng.normal(), 19, 38), 2);
}

/**
 * IR proximity voltage, V (3 decimals, 0.7-1.8 in normal wear): the tag holds one value for a
 * two-hour block, with fresh readings now and then; an obstruction lowers it to about a third.
 */
export function irVolts(d: Drinker, key: string, t: number, rng: Rng, obstructed: boolean): number {
  const block = rngFor(key, 'ir-block', Math.floor(t / (2 * H)));
  const held = d.irBase * (1 + 0.06 * block.normal());
  const r = rng.next();
  const v = r < 0.7 ? held : r < 0.97 ? d.irBase * (1 + 0.08 * rng.normal()) : rng.range(1.5, 1.8);
  const normal = clamp(v, 0.7, 1.8);
  return round(obstructed ? normal * rng.range(0.25, 0.4) : normal, 3);
}

import type { AlcoholReadingIn } from '../../alcohol/classify.js';
import { drinkerFor, drinkingEpisode, episodeEnd, episodeTac, isRising, obstructionFor, observeTac, skinTempC, spikeFor, type Episode } from '../../sim/alcohol.js';
import { createRng, hashSeed, type Rng } from '../../sim/rng.js';

/**
 * A year of one subject's transdermal alcohol readings, generated in memory for bench:alcohol
 * with the fleet simulator's models (sim/alcohol.ts, shaped on data/barcrawl/): a
 * reading every 30 minutes (± 2), every 5 while alcohol is rising; 50 % abstinent, 35 %
 * occasional and 15 % heavy drinkers (more on Fridays and Saturdays); noisy raw TAC, sanitiser spikes, IR held in
 * two-hour blocks, skin temperature that wanders; now and then an obstruction (IR to a third)
 * or a few hours without signal. Pure: a function of (seed, subject). Times are epoch ms.
 */

const H = 3_600_000;
const MIN = 60_000;

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** IR proximity voltage (V, 3 dp): the sim's model, with the two-hour held value kept per block. */
function irModel(rng: Rng, irBase: number) {
  let block = -1;
  let held = irBase;
  return (t: number, obstructed: boolean): number => {
    const b = Math.floor(t / (2 * H));
    if (b !== block) {
      block = b;
      held = irBase * (1 + 0.06 * rng.normal());
    }
    const r = rng.next();
    const v = r < 0.7 ? held : r < 0.97 ? irBase * (1 + 0.08 * rng.normal()) : rng.range(1.5, 1.8);
    const normal = clamp(v, 0.7, 1.8);
    return Math.round((obstructed ? normal * rng.range(0.25, 0.4) : normal) * 1000) / 1000;
  };
}

/**
 * The readings of subject `s` over the local days `days` ([date, start ms, end ms], as
 * alcohol/days.ts localDays gives them), in time order.
 */
export function subjectYear(seed: number, s: number, days: Array<[string, number, number]>): AlcoholReadingIn[] {
  const rng = createRng(hashSeed(seed, 'alcohol-bench', s));
  // an abstinence-order cohort: more abstainers than the fleet simulator's general mix
  const r = rng.next();
  const drinker = { ...drinkerFor(rng), kind: r < 0.5 ? ('abstinent' as const) : r < 0.85 ? ('occasional' as const) : ('heavy' as const) };
  const ir = irModel(rng, drinker.irBase);
  const out: AlcoholReadingIn[] = [];
  let episodes: Episode[] = [];
  let t = days[0]![1] + Math.round(rng.range(0, 30) * MIN);
  for (const [date, start, end] of days) {
    const weekday = ((new Date(`${date}T12:00:00Z`).getUTCDay() + 6) % 7) + 1; // 1 = Monday
    const e = drinkingEpisode(drinker, start, weekday, rng);
    episodes = episodes.filter((x) => episodeEnd(x) > start);
    if (e) episodes.push(e);
    const spike = spikeFor(start, rng);
    const obstruction = obstructionFor(start, rng);
    const gapFrom = rng.chance(0.02) ? start + rng.range(0, 20) * H : Infinity;
    const gapTo = gapFrom + rng.range(2, 6) * H;
    const hours = (end - start) / H;
    while (t < end) {
      if (t < gapFrom || t >= gapTo) {
        let tac = 0;
        for (const x of episodes) tac += episodeTac(x, t);
        if (spike && t >= spike.at && t < spike.at + spike.lenMs) tac += spike.level;
        const obstructed = obstruction !== null && t >= obstruction.from && t < obstruction.to;
        out.push({
          ts: t,
          tac: observeTac(tac, rng),
          temp_c: skinTempC(drinker, ((t - start) / H) * (24 / hours), rng),
          ir: ir(t, obstructed),
        });
      }
      const rising = episodes.some((x) => isRising(x, t));
      t += rising ? 5 * MIN : Math.round((30 + rng.range(-2, 2)) * MIN);
    }
  }
  return out;
}

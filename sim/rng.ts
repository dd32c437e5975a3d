/**
 * Seeded pseudo-random numbers for the fleet simulator. Pure: a generator is a function of its
 * seed only. `rngFor(...parts)` derives an independent stream from a tuple (seed, device id,
 * purpose, time), so any reading can be regenerated on its own, in any order.
 */

export interface Rng {
  /** uniform in [0, 1) */
  next(): number;
  /** uniform in [lo, hi) */
  range(lo: number, hi: number): number;
  /** uniform integer in [lo, hi], both inclusive */
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** standard normal (mean 0, sd 1) */
  normal(): number;
}

/** A 32-bit hash of the parts (cyrb53's mixing, folded to 32 bits). */
export function hashSeed(...parts: Array<string | number>): number {
  const s = parts.join('\u0001');
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h1 ^ h2) >>> 0;
}

/** mulberry32: small, fast, good enough for simulation (not for secrets). */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    range: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor((hi - lo + 1) * next()),
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(items.length * next())]!,
    normal: () => {
      // Box-Muller; 1 - next() keeps the logarithm finite
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
  };
}

/** An independent generator for the tuple `parts` (e.g. seed, device id, 'gps', time). */
export function rngFor(...parts: Array<string | number>): Rng {
  return createRng(hashSeed(...parts));
}

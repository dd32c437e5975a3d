import proj4 from 'proj4';
import { EPSG_27700 } from '../crime/grid.js';
import { positionOf, readingsBetween, type SimDevice } from './model.js';
import { rngFor } from './rng.js';
import { NOTTINGHAM, offsetM } from './track.js';

/**
 * A crime batch for the simulated town with known ground truth (contract §8, issue 13): some
 * crimes are committed by simulated subjects at their TRUE positions (the model's, between and
 * away from the fixes their tags report), most by nobody on tag, at random places in the town.
 * Pure: a function of the fleet, the seed and the period (epoch ms).
 */

export interface TruthRow {
  crime_ref: string;
  /** the subject who committed it, or null */
  committed_by: string | null;
  /** epoch ms: when it was committed (committed crimes) */
  at: number | null;
  from: number;
  to: number;
  lat: number;
  lon: number;
  /** m: distance from the true position to the nearest reported fix of the committer within ±10 min (null: none) */
  nearest_fix_m: number | null;
}

export interface CrimePlan {
  csv: string;
  truth: TruthRow[];
  batchId: string;
}

const H = 3_600_000;
const toGrid = proj4('WGS84', EPSG_27700);
const TYPES = ['BIAD', 'TFMV', 'TFP', 'RB', 'BOTD', 'TOMV', 'AB'];
const sec = (ms: number) => Math.round(ms / 1000) * 1000;
const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);

/**
 * `count` crimes in [from, to] (ms); `committedShare` of them by subjects whose tags were
 * measuring around the time (a fix within 30 min before and after: a flat tag is not a test of
 * matching). `rate`: the simulation's GPS fixes per minute while moving.
 */
export function planCrimes(fleet: readonly SimDevice[], o: { seed: string | number; count: number; from: number; to: number; rate: number; committedShare?: number }): CrimePlan {
  const rng = rngFor(o.seed, 'crimes', o.count, o.from);
  const gps = fleet.filter((d) => d.kind !== 'alcohol');
  const committed = gps.length ? Math.round(o.count * (o.committedShare ?? 0.2)) : 0;
  const batchId = `NOT${compact(o.to).slice(0, 8)}`;
  // which rows are committed: a random set, so the order of the file tells nothing
  const order = Array.from({ length: o.count }, (_, i) => i);
  for (let j = order.length - 1; j > 0; j--) {
    const x = rng.int(0, j);
    [order[j], order[x]] = [order[x]!, order[j]!];
  }
  const chosen = new Set(order.slice(0, committed));
  const truth: TruthRow[] = [];
  const lines: string[] = [];
  for (let i = 0; i < o.count; i++) {
    const ref = `SIM/${String(i + 1).padStart(5, '0')}/${compact(o.to).slice(2, 8)}`;
    // window: up to 12 h, the offence somewhere inside it
    const before = sec(rng.range(0, 5) * H * (rng.chance(0.3) ? 0.1 : 1));
    const after = sec(rng.range(0, 5) * H * (rng.chance(0.3) ? 0.1 : 1));
    let row: TruthRow | null = null;
    for (let attempt = 0; chosen.has(i) && attempt < 20 && !row; attempt++) {
      const dev = gps[rng.int(0, gps.length - 1)]!;
      const at = sec(rng.range(o.from + before, o.to - after));
      const near = readingsBetween(dev, at - 30 * 60_000, at + 30 * 60_000, o.rate).gps.map((f) => ({ t: Date.parse(f.ts), lat: f.lat, lon: f.lon }));
      if (!near.some((f) => f.t <= at) || !near.some((f) => f.t >= at)) continue;
      const pos = positionOf(dev, at).at;
      const close = near.filter((f) => Math.abs(f.t - at) <= 10 * 60_000).map((f) => metres(pos, f));
      row = { crime_ref: ref, committed_by: dev.subject.id, at, from: at - before, to: at + after, lat: pos.lat, lon: pos.lon, nearest_fix_m: close.length ? Math.round(Math.min(...close)) : null };
    }
    if (!row) {
      const at = sec(rng.range(o.from + before, o.to - after));
      const p = offsetM(NOTTINGHAM, rng.range(-7000, 7000), rng.range(-7000, 7000));
      row = { crime_ref: ref, committed_by: null, at: null, from: at - before, to: at + after, lat: p.lat, lon: p.lon, nearest_fix_m: null };
    }
    truth.push(row);
    const type = TYPES[rng.int(0, TYPES.length - 1)]!;
    // half the rows on the National Grid (whole metres, as forces send them), half in WGS84
    const grid = rng.chance(0.5);
    const [e, n] = grid ? (toGrid.forward([row.lon, row.lat]) as [number, number]).map((v) => Math.round(v)) : [null, null];
    const loc = grid ? `${e},${n},,,OSGB36` : `,,${row.lat.toFixed(6)},${row.lon.toFixed(6)},WGS84`;
    lines.push(`NOTTINGHAMSHIRE,${type},,${batchId},${ref},${compact(row.from)},${compact(row.to)},${loc},simulated ${type.toLowerCase()}`);
  }
  return { csv: lines.join('\r\n') + '\r\n', truth, batchId };
}

function metres(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const k = 111_320;
  return Math.hypot((a.lat - b.lat) * k, (a.lon - b.lon) * k * Math.cos((a.lat * Math.PI) / 180));
}

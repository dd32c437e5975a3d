import { createRng } from '../../sim/rng.js';
import type { GeoDevicePlan } from '../common/fleet.js';
import type { Planned } from '../geofence/e2e.js';
import { e2eSubject } from '../geofence/town.js';

/**
 * The soak's fleet: bench:geofence phase (d)'s town (every subject two exclusion zones of 20-200
 * vertices, radius 100-250 m, living 1.5 km from both), but the breaches are spread over the
 * whole run: breach j of B starts at periodic fix fromK_j, evenly from fix 2 to the last fix that
 * still leaves the walk inside the run, each by a subject of its own. A breaching subject stays
 * inside for `insideFixes` fixes (the 60 s grace plus two fixes), so its alert is proven by the
 * fix `graceFixes` after its first inside one: every minute after the first has alerts.
 *
 * Times: device i of n sends its k-th fix at t0 + (k·n + i)·interval/n (bench/common/fleet.ts).
 */

export interface SoakPlanOptions {
  devices: number;
  intervalMs: number;
  durationMs: number;
  breachesPerMinute: number;
  seed: number;
}

export interface SoakPlan extends Planned {
  /** periodic fixes per device */
  fixesPerDevice: number;
  /** fixes from the first inside one to the fix that proves the breach (grace 60 s) */
  graceFixes: number;
  breaches: number;
}

const GRACE_MS = 60_000;

export function soakPlan(o: SoakPlanOptions, run: string): SoakPlan {
  const rng = createRng(o.seed);
  const K = Math.floor(o.durationMs / o.intervalMs);
  const graceFixes = Math.ceil(GRACE_MS / o.intervalMs);
  const insideFixes = graceFixes + 2;
  // the first breach starts at fix 2 (two outside fixes first), the last ends by fix K
  const span = K - insideFixes - 1;
  if (span < 1) throw new Error(`the soak needs at least ${insideFixes + 2} fixes per device: --minutes × 60 ≥ ${((insideFixes + 2) * o.intervalMs) / 1000} s`);
  const wanted = Math.round((o.breachesPerMinute * o.durationMs) / 60_000);
  const breaches = Math.max(1, Math.min(wanted, o.devices));
  const step = Math.max(1, Math.floor(o.devices / breaches));
  const startOf = new Map<number, number>();
  for (let j = 0; j < breaches; j++) startOf.set(j * step, 2 + Math.floor((j * span) / breaches));
  const fleet: GeoDevicePlan[] = [];
  const zones: Planned['zones'] = [];
  for (let i = 0; i < o.devices; i++) {
    const subject = `s${run}-${i}`;
    const { home, target, zones: own } = e2eSubject(rng, subject);
    zones.push(...own);
    const fromK = startOf.get(i);
    fleet.push({ id: `d${run}-${i}`, home, breach: fromK === undefined ? null : { at: target, fromK, toK: fromK + insideFixes } });
  }
  return { fleet, zones, fixesPerDevice: K, graceFixes, breaches };
}

/** Epoch ms of device i's k-th periodic fix (as the fleet child stamps it, rounded to the ms). */
export function fixTime(t0: number, k: number, i: number, devices: number, intervalMs: number): number {
  return Math.round(t0 + ((k * devices + i) * intervalMs) / devices);
}

/** The ground truth: per breaching subject, its breach's start (ISO, ms) and the time of the fix that proves it. */
export function expectedBreaches(p: SoakPlan, t0: number, intervalMs: number): Map<string, { started: string; provenAt: number }> {
  const out = new Map<string, { started: string; provenAt: number }>();
  const n = p.fleet.length;
  p.fleet.forEach((d, i) => {
    if (!d.breach) return;
    out.set(p.zones[2 * i]!.subject, {
      started: new Date(fixTime(t0, d.breach.fromK, i, n, intervalMs)).toISOString(),
      provenAt: fixTime(t0, d.breach.fromK + p.graceFixes, i, n, intervalMs),
    });
  });
  return out;
}

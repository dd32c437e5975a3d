import type { Stream } from '../signals/streams.js';
import { rngFor } from './rng.js';
import { placesFor, type Places } from './track.js';
import { drinkerFor, type Drinker } from './alcohol.js';

/** Who the simulated wearers are and which tags they wear. Pure: a function of the seed. */

export const ZONE = 'Europe/London';
const STREAMS: Stream[] = ['gps', 'alcohol', 'status'];

export type Kind = 'gps' | 'alcohol' | 'combined';
export interface SubjectBody {
  id: string;
  display_name: string;
  cohort: 'fixed' | 'flex' | 'free';
  rag: 'red' | 'amber' | 'green';
  timezone: string;
  offender_manager_ids: string[];
}

export interface SimDevice {
  id: string;
  kind: Kind;
  streams: Stream[];
  subject: SubjectBody;
  /** root of every random stream of this device (seed and id) */
  key: string;
  places: Places;
  drinker: Drinker;
  /** offset of the device's sampling grids, ms */
  phaseMs: number;
  battery: { drainPerH: number; chargePerH: number; chargeHour: number; forgetP: number };
}

export interface FleetOptions {
  seed: number | string;
  devices: number;
  /** prefix of device ids (`{prefix}tag-0001`) and subject ids (`{prefix}subj-0001`) */
  prefix: string;
}

const FIRST = ['Alex', 'Sam', 'Jordan', 'Chris', 'Danny', 'Lee', 'Kelly', 'Jamie', 'Ryan', 'Liam', 'Callum', 'Jade', 'Dean', 'Nathan', 'Kyle', 'Stacey', 'Craig', 'Leanne', 'Wayne', 'Shane'];
const LAST = ['Smith', 'Jones', 'Taylor', 'Brown', 'Walker', 'Wright', 'Hughes', 'Green', 'Hall', 'Wood', 'Clarke', 'Turner', 'Hill', 'Moore', 'Cooper', 'Ward', 'Baker', 'Bell', 'Marsh', 'Shaw'];

/** The simulated fleet: one subject per device, kinds mixed (40 % combined, 35 % gps, 25 % alcohol). */
export function planFleet(o: FleetOptions): SimDevice[] {
  return Array.from({ length: o.devices }, (_, i) => {
    const n = String(i + 1).padStart(4, '0');
    const id = `${o.prefix}tag-${n}`;
    const rng = rngFor(o.seed, 'fleet', i);
    const r = rng.next();
    const kind: Kind = r < 0.4 ? 'combined' : r < 0.75 ? 'gps' : 'alcohol';
    const oms = [`om-${(i % 5) + 1}`];
    if (rng.chance(0.15)) oms.push(`om-${((i + 2) % 5) + 1}`);
    const ragR = rng.next();
    return {
      id,
      kind,
      streams: kind === 'combined' ? [...STREAMS] : [kind, 'status'],
      subject: {
        id: `${o.prefix}subj-${n}`,
        display_name: `${rng.pick(FIRST)} ${rng.pick(LAST)}`,
        cohort: rng.pick(['fixed', 'flex', 'free'] as const),
        rag: ragR < 0.25 ? 'red' : ragR < 0.65 ? 'amber' : 'green',
        timezone: ZONE,
        offender_manager_ids: oms,
      },
      key: `${o.seed}/${id}`,
      places: placesFor(rng),
      drinker: drinkerFor(rng),
      phaseMs: rng.int(0, 30 * 60_000),
      battery: { drainPerH: rng.range(1.6, 2.6), chargePerH: rng.range(40, 60), chargeHour: rng.range(19, 23), forgetP: rng.chance(0.15) ? 0.3 : 0.05 },
    };
  });
}

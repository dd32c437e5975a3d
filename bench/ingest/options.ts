import { parseArgs } from 'node:util';
import { ConfigSchema } from '../../platform/config.js';

/** Command line of `npm run bench:ingest`; the ingest knobs come from the environment. */

export const USAGE = `usage: npm run bench:ingest -- [--readings N] [--devices N] [--batch N] [--phases abcdl]
  [--rate R] [--latency-seconds S] [--pub-connections N] [--pub-window N] [--sub-connections N]
  [--warmup N] [--timeout S] [--quiet-wait S] [--ingest-node-args="--cpu-prof --cpu-prof-dir=DIR"]
  [--ingest-env KEY=VALUE ...] [--json]
phases: a COPY ceiling, b broker ceiling, c end to end (1 reading/message), d end to end
(batches), l latency at a paced rate. Ingest knobs: INGEST_CONNECTIONS, INGEST_INFLIGHT,
INGEST_MAX_PENDING, INGEST_DB_SLOTS, INGEST_MAX_BATCH in the environment (defaults from
platform/config.ts); (b) subscribes with INGEST_CONNECTIONS sessions of INGEST_INFLIGHT each.`;

export interface BenchOptions {
  readings: number;
  devices: number;
  batch: number;
  phases: Set<string>;
  rate: number;
  latencySeconds: number;
  pubConnections: number;
  pubWindow: number;
  subConnections: number;
  subInflight: number;
  warmup: number;
  timeoutMs: number;
  quietWaitMs: number;
  ingestNodeArgs: string[];
  /** the ingest knobs (KNOBS) as the ingest child gets them */
  knobs: Record<string, string>;
  /** extra environment for the ingest child (experiments, e.g. NODE_OPTIONS) */
  ingestEnv: Record<string, string>;
  json: boolean;
}

/** Thrown for a bad command line; the message is printed with the usage. */
export class UsageError extends Error {}

const KNOBS = ['INGEST_CONNECTIONS', 'INGEST_INFLIGHT', 'INGEST_MAX_PENDING', 'INGEST_DB_SLOTS', 'INGEST_MAX_BATCH'] as const;

export function parseBenchOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values: f } = parseArgs({
    args: argv,
    options: {
      readings: { type: 'string', default: env.BENCH_READINGS ?? '500000' },
      devices: { type: 'string', default: env.BENCH_DEVICES ?? '2000' },
      batch: { type: 'string', default: '50' },
      phases: { type: 'string', default: 'abcdl' },
      rate: { type: 'string', default: '5000' },
      'latency-seconds': { type: 'string', default: '10' },
      'pub-connections': { type: 'string', default: '8' },
      'pub-window': { type: 'string', default: '100' },
      'sub-connections': { type: 'string' },
      warmup: { type: 'string', default: '10000' },
      timeout: { type: 'string', default: '180' },
      'quiet-wait': { type: 'string', default: '60' },
      'ingest-node-args': { type: 'string', default: '' },
      'ingest-env': { type: 'string', multiple: true, default: [] },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (f.help) return 'help';
  const int = (name: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${v}`);
    return n;
  };
  const knobs: Record<string, string> = {};
  for (const k of KNOBS) knobs[k] = env[k] ?? String((ConfigSchema.properties[k] as { default: number }).default);
  const ingestEnv: Record<string, string> = {};
  for (const kv of f['ingest-env']) {
    const i = kv.indexOf('=');
    if (i < 1) throw new UsageError(`--ingest-env takes KEY=VALUE, got ${kv}`);
    ingestEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const batch = int('batch', f.batch);
  const o: BenchOptions = {
    // whole batches, so (a) and (d) hold exactly as many readings as (c)
    readings: Math.max(batch, Math.floor(int('readings', f.readings) / batch) * batch),
    devices: int('devices', f.devices),
    batch,
    phases: new Set(f.phases.split('')),
    rate: int('rate', f.rate),
    latencySeconds: int('latency-seconds', f['latency-seconds']),
    pubConnections: int('pub-connections', f['pub-connections']),
    pubWindow: int('pub-window', f['pub-window']),
    subConnections: int('sub-connections', f['sub-connections'] ?? knobs.INGEST_CONNECTIONS),
    subInflight: int('INGEST_INFLIGHT', knobs.INGEST_INFLIGHT),
    warmup: int('warmup', f.warmup, 0),
    timeoutMs: int('timeout', f.timeout) * 1000,
    quietWaitMs: int('quiet-wait', f['quiet-wait'], 0) * 1000,
    ingestNodeArgs: f['ingest-node-args'].split(' ').filter(Boolean),
    knobs,
    ingestEnv,
    json: f.json,
  };
  if ([...o.phases].some((p) => !'abcdl'.includes(p))) throw new UsageError(`--phases takes letters of abcdl, got ${f.phases}`);
  // Each phase's device times lie within its own past day (see phases.ts).
  if (Math.max(o.readings, o.warmup, o.rate * o.latencySeconds) / o.devices >= 86_400) {
    throw new UsageError('more than 86,400 readings per device would run device times into the next phase or the future');
  }
  return o;
}

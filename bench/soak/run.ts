import type { StackEnv } from '../../scripts/stack.js';
import type { Cleanup } from '../common/setup.js';
import { startCpuMeter, type CpuUsage } from '../common/sample.js';
import { withTimeout } from '../common/procs.js';
import { scope } from '../common/runner.js';
import { startFleet } from '../common/fleet.js';
import { createEnvironment, queueProbe, waitDrained } from '../common/service.js';
import { load } from '../geofence/e2e.js';
import { childPids, memorySnapshot, stackPids } from './memory.js';
import { expectedBreaches, soakPlan } from './plan.js';
import { meanOf, type MinuteSample } from './verdict.js';

/**
 * The soak (issue 14 §5): bench:geofence phase (d)'s pipeline (fleet child → its own Mosquitto
 * → ingest → BullMQ → worker, plus an api process, each a child process, fresh database) run
 * for `minutes`, with breaches all along (plan.ts). Per minute: RSS of every process
 * (memory.ts), the mean of a snapshot every `memoryEveryMs` and one at the minute's end; the
 * evaluation queue and the marks every `queueEveryMs` (peaks kept). After the drain, from the database: readings stored per minute (received_at)
 * and publish→alert of the alerts raised per minute (raised_at), and the ground truth check.
 */

export interface SoakOptions {
  devices: number;
  intervalMs: number;
  minutes: number;
  breachesPerMinute: number;
  drainTimeoutMs: number;
  pubConnections: number;
  seed: number;
  queueEveryMs: number;
  memoryEveryMs: number;
}

export interface SoakResult {
  samples: MinuteSample[];
  breaches: number;
  published: number;
  stored: number;
  /** readings stored after the last minute ended (the drain) */
  storedAfter: number;
  rejected: number;
  expected: number;
  raised: number;
  missed: number;
  duplicated: number;
  unexpected: number;
  wrongStart: number;
  late: number;
  otherAlerts: string;
  complete: boolean;
  drainSeconds: number;
  maxLagMs: number;
  cpu: CpuUsage;
}

const ms = (expr: string) => `extract(epoch FROM ${expr}) * 1000`;
const MINUTE = 60_000;

export async function runSoak(stack: StackEnv, cleanups: Cleanup[], o: SoakOptions, log: (m: string) => void, settle: () => Promise<void>): Promise<SoakResult> {
  const sc = scope(cleanups, 'soak');
  const timers: NodeJS.Timeout[] = [];
  sc.cleanups.push({ what: 'soak timers', run: () => timers.forEach((t) => clearTimeout(t)) });
  try {
    const env = await createEnvironment(stack, sc.cleanups);
    const run = env.prefix.slice(-4);
    const durationMs = o.minutes * MINUTE;
    const p = soakPlan({ devices: o.devices, intervalMs: o.intervalMs, durationMs, breachesPerMinute: o.breachesPerMinute, seed: o.seed }, run);
    log(`${o.devices} devices: database ${env.db.name}, loading ${p.zones.length} zones; ${p.breaches} breaches over ${o.minutes} min`);
    await load(env, p);
    await env.start(['worker', 'ingest', 'api']);
    const probe = await queueProbe(stack.REDIS_URL, env.prefix, sc.cleanups);
    const fleet = startFleet({
      url: env.broker.url,
      connections: o.pubConnections,
      window: 100,
      clientPrefix: `soak-${run}`,
      scenario: { kind: 'geofence', intervalMs: o.intervalMs, devices: p.fleet },
      durationMs,
    });
    sc.cleanups.push({ what: 'fleet publisher', run: () => fleet.stop() });
    await withTimeout(fleet.ready, 60_000, () => 'fleet publisher not ready within 60 s');
    await settle();
    const pid = (mode: string) => env.children.find((c) => c.mode === mode)!.pid;
    const single = { ingest: pid('ingest'), worker: pid('worker'), api: pid('api'), fleet: fleet.pid, mosquitto: env.broker.pid };
    const { postmaster, redis } = stackPids();
    const processes = { ...single, redis };
    const meter = startCpuMeter(() => ({ ...Object.fromEntries(Object.entries(processes).map(([k, v]) => [k, [v]])), postgres: [postmaster, ...childPids(postmaster)], bench: [process.pid] }));

    const { started, done } = fleet.go();
    const t0 = await started;
    log(`publishing ${((o.devices * 1000) / o.intervalMs).toFixed(0)} fixes/s for ${o.minutes} min`);
    const peaks = { jobs: 0, marks: 0 };
    const poll = setInterval(() => {
      void probe.evaluation().then((n) => (peaks.jobs = Math.max(peaks.jobs, n)), () => undefined);
      void probe.marks().then((n) => (peaks.marks = Math.max(peaks.marks, n)), () => undefined);
    }, o.queueEveryMs);
    timers.push(poll);
    // memory: a snapshot every memoryEveryMs, averaged over the minute (one reading would catch a GC's high or low point)
    let memory: Record<string, number>[] = [];
    const memoryPoll = setInterval(() => memory.push(memorySnapshot(processes, postmaster)), o.memoryEveryMs);
    timers.push(memoryPoll);
    const taken: Omit<MinuteSample, 'fixesStored' | 'latencies'>[] = [];
    const allTaken = new Promise<void>((resolve) => {
      for (let m = 1; m <= o.minutes; m++) {
        const at = () => {
          memory.push(memorySnapshot(processes, postmaster));
          const rssMiB = meanOf(memory);
          memory = [];
          taken.push({ minute: m, rssMiB, queueJobs: peaks.jobs, marks: peaks.marks });
          const mem = Object.entries(rssMiB).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
          log(`minute ${m}/${o.minutes}: RSS MiB ${mem}; peak jobs ${peaks.jobs}, devices waiting ${peaks.marks}`);
          peaks.jobs = 0;
          peaks.marks = 0;
          if (m === o.minutes) resolve();
        };
        timers.push(setTimeout(at, Math.max(0, t0 + m * MINUTE - Date.now())));
      }
    });
    const report = await withTimeout(done, durationMs + o.drainTimeoutMs, () => `the fleet did not finish publishing\n${env.tails()}`);
    await allTaken;
    const total = report.published;
    const pool = env.db.pool;
    const complete = await waitDrained(pool, () => probe.evaluation(), total, o.drainTimeoutMs);
    const drainSeconds = (Date.now() - report.lastAckAt) / 1000;
    clearInterval(poll);
    clearInterval(memoryPoll);
    const cpu = meter.stop();
    if (!complete) log(`not drained within ${o.drainTimeoutMs / 1000} s of the last publish: figures cover what was evaluated`);

    const perMinute = await pool.query<{ m: number; n: number }>(
      `SELECT floor((${ms('received_at')} - $1) / ${MINUTE})::int AS m, count(*)::int AS n FROM readings GROUP BY 1`,
      [t0],
    );
    const rejected = Number((await pool.query<{ n: string }>(`SELECT count(*) n FROM rejections`)).rows[0]!.n);
    const alerts = await pool.query<{ subject_id: string; zone: string | null; started: string; late: boolean; e2e: number; raised: number }>(
      `SELECT a.subject_id, z.name AS zone, to_char(a.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS started, a.late,
              ${ms(`a.raised_at - (r.data->>'sent_at')::timestamptz`)} AS e2e, ${ms('a.raised_at')} AS raised
         FROM alerts a LEFT JOIN zones z ON z.id = a.zone_id
         LEFT JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps' AND r.ts = (a.evidence->-1->>'ts')::timestamptz
        WHERE a.type = 'exclusion_breach'`,
    );
    const others = await pool.query<{ type: string; n: string }>(`SELECT type, count(*) n FROM alerts WHERE type <> 'exclusion_breach' GROUP BY type`);

    const samples: MinuteSample[] = taken.map((t) => ({ ...t, fixesStored: 0, latencies: [] }));
    let stored = 0;
    let storedAfter = 0;
    for (const r of perMinute.rows) {
      stored += r.n;
      if (r.m >= o.minutes) storedAfter += r.n;
      else samples[Math.max(0, r.m)]!.fixesStored += r.n;
    }
    for (const a of alerts.rows) {
      // an alert raised during the drain counts in the last minute
      const m = Math.min(o.minutes - 1, Math.max(0, Math.floor((Number(a.raised) - t0) / MINUTE)));
      if (a.e2e !== null) samples[m]!.latencies.push(Number(a.e2e));
    }
    const expected = expectedBreaches(p, t0, o.intervalMs);
    const seen = new Map<string, number>();
    let unexpected = 0;
    let wrongStart = 0;
    for (const a of alerts.rows) {
      const want = expected.get(a.subject_id);
      if (!want || a.zone !== 'target') unexpected++;
      else if (a.started !== want.started) wrongStart++;
      seen.set(a.subject_id, (seen.get(a.subject_id) ?? 0) + 1);
    }
    return {
      samples,
      breaches: p.breaches,
      published: total,
      stored,
      storedAfter,
      rejected,
      expected: expected.size,
      raised: alerts.rowCount ?? 0,
      missed: [...expected.keys()].filter((s) => !seen.has(s)).length,
      duplicated: [...seen.values()].reduce((n, c) => n + Math.max(0, c - 1), 0),
      unexpected,
      wrongStart,
      late: alerts.rows.filter((a) => a.late).length,
      otherAlerts: others.rows.map((r) => `${r.type} ${r.n}`).join(', ') || 'none',
      complete,
      drainSeconds,
      maxLagMs: report.maxLagMs,
      cpu,
    };
  } finally {
    await sc.close();
  }
}

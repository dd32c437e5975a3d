import type { StackEnv } from '../../scripts/stack.js';
import type { Cleanup } from '../common/setup.js';
import { pidsByName, startCpuMeter, type CpuUsage } from '../common/sample.js';
import { withTimeout } from '../common/procs.js';
import { createRng } from '../../sim/rng.js';
import { scope, startSoftirqMeter, summarize, type Summary } from '../common/runner.js';
import { startFleet, type GeoDevicePlan } from '../common/fleet.js';
import { createEnvironment, queueProbe, waitDrained, type Environment } from '../common/service.js';
import { e2eSubject } from './town.js';

/**
 * Phase (d) of bench:geofence: a simulated fleet → MQTT → ingest → BullMQ → the evaluation
 * worker, each part a child process, against a fresh database. Every subject has two exclusion
 * zones (20-200 vertices, radius 100-250 m) and lives 1.5 km from both; `breachPct` % of them
 * walk into the first for 80 s. Ground truth comes from the plan: one exclusion_breach per
 * breaching subject, started at its first inside fix and proven by the fix 60 s later (grace).
 */

export interface E2eOptions {
  devices: number;
  intervalMs: number;
  durationMs: number;
  breachPct: number;
  drainTimeoutMs: number;
  pubConnections: number;
  seed: number;
}

export interface E2eResult {
  devices: number;
  offeredPerSec: number;
  published: number;
  expected: number;
  raised: number;
  missed: number;
  duplicated: number;
  unexpected: number;
  wrongStart: number;
  late: number;
  otherAlerts: string;
  /** publish → alert raised, and its two legs: publish → reading committed, committed → alert */
  e2e: Summary;
  ingestLeg: Summary;
  workerLeg: Summary;
  /** publish → commit over every fix */
  ingestAll: Summary;
  maxQueue: number;
  /** most devices signalled and not yet taken by a job */
  maxMarks: number;
  /** evaluation jobs completed during the measured time, and the devices and fixes they evaluated */
  jobs: number;
  jobFixes: number;
  jobDevices: number;
  drainSeconds: number;
  complete: boolean;
  maxLagMs: number;
  cpu: CpuUsage;
  /** machine softirq, % of one core (part of the CPU table's "other") */
  softirq: number;
}

export interface Planned {
  fleet: GeoDevicePlan[];
  zones: { subject: string; name: string; geometry: string }[];
}

function plan(o: E2eOptions, run: string): Planned {
  const rng = createRng(o.seed);
  const K = Math.floor(o.durationMs / o.intervalMs);
  if (K < 10) throw new Error(`phase (d) needs at least 10 fixes per device: --e2e-seconds ≥ ${(10 * o.intervalMs) / 1000}`);
  const breaches = Math.max(5, Math.round((o.devices * o.breachPct) / 100));
  const step = Math.max(1, Math.floor(o.devices / breaches));
  const fleet: GeoDevicePlan[] = [];
  const zones: Planned['zones'] = [];
  for (let i = 0; i < o.devices; i++) {
    const subject = `s${run}-${i}`;
    const { home, target, zones: own } = e2eSubject(rng, subject);
    zones.push(...own);
    const breaching = i % step === 0 && i / step < breaches;
    const fromK = breaching ? rng.int(2, K - 8) : 0;
    fleet.push({ id: `d${run}-${i}`, home, breach: breaching ? { at: target, fromK, toK: fromK + 8 } : null });
  }
  return { fleet, zones };
}

/** Subjects, devices, assignments and two exclusion zones per subject (grace 60 s), then ANALYZE. */
export async function load(env: Environment, p: Planned): Promise<void> {
  const pool = env.db.pool;
  const ids = p.fleet.map((d) => d.id);
  const subjects = p.fleet.map((_, i) => p.zones[2 * i]!.subject);
  for (let i = 0; i < ids.length; i += 5000) {
    const s = subjects.slice(i, i + 5000);
    const d = ids.slice(i, i + 5000);
    await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT x, x, 'fixed', 'amber', ARRAY['om-bench'] FROM unnest($1::text[]) x`, [s]);
    await pool.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'gps'`, [d]);
    await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT s, d, now() FROM unnest($1::text[], $2::text[]) AS t(s, d)`, [s, d]);
  }
  for (let i = 0; i < p.zones.length; i += 2000) {
    const z = p.zones.slice(i, i + 2000);
    await pool.query(
      `INSERT INTO zones (subject_id, kind, name, geometry, grace_s, created_by)
       SELECT s, 'exclusion', n, g::jsonb, 60, 'bench' FROM unnest($1::text[], $2::text[], $3::text[]) AS t(s, n, g)`,
      [z.map((x) => x.subject), z.map((x) => x.name), z.map((x) => x.geometry)],
    );
  }
  await pool.query('ANALYZE');
}

const ms = (expr: string) => `extract(epoch FROM ${expr}) * 1000`;

/** One scale of phase (d), in an environment of its own that is torn down before returning. */
export async function runE2e(stack: StackEnv, cleanups: Cleanup[], o: E2eOptions, log: (m: string) => void, settle: () => Promise<void>): Promise<E2eResult> {
  const sc = scope(cleanups, `phase (d) at ${o.devices} devices`);
  try {
    const env = await createEnvironment(stack, sc.cleanups);
    const run = env.prefix.slice(-4);
    const p = plan(o, run);
    log(`(d) ${o.devices} devices: database ${env.db.name}, loading ${p.zones.length} zones`);
    await load(env, p);
    await env.start(['worker', 'ingest']);
    const probe = await queueProbe(stack.REDIS_URL, env.prefix, sc.cleanups);
    const fleet = startFleet({
      url: env.broker.url,
      connections: o.pubConnections,
      window: 100,
      clientPrefix: `fleet-${run}`,
      scenario: { kind: 'geofence', intervalMs: o.intervalMs, devices: p.fleet },
      durationMs: o.durationMs,
    });
    sc.cleanups.push({ what: 'fleet publisher', run: () => fleet.stop() });
    await withTimeout(fleet.ready, 60_000, () => 'fleet publisher not ready within 60 s');
    await settle();
    const [ingest, worker] = [env.children.find((c) => c.mode === 'ingest')!, env.children.find((c) => c.mode === 'worker')!];
    const meter = startCpuMeter(() => ({
      ingest: [ingest.pid],
      worker: [worker.pid],
      fleet: [fleet.pid],
      mosquitto: [env.broker.pid],
      postgres: pidsByName('postgres'),
      redis: pidsByName('redis-server'),
      bench: [process.pid],
    }));
    const softirqMeter = startSoftirqMeter();
    let maxQueue = 0;
    let maxMarks = 0;
    const sampler = setInterval(() => {
      void probe.evaluation().then((n) => (maxQueue = Math.max(maxQueue, n)), () => undefined);
      void probe.marks().then((n) => (maxMarks = Math.max(maxMarks, n)), () => undefined);
    }, 1000);
    const { started, done } = fleet.go();
    const t0 = await started;
    log(`(d) publishing ${((o.devices * 1000) / o.intervalMs).toFixed(0)} fixes/s for ${o.durationMs / 1000} s`);
    const report = await withTimeout(done, o.durationMs + o.drainTimeoutMs, () => `(d) the fleet did not finish publishing\n${env.tails()}`);
    const total = report.published;
    const pool = env.db.pool;
    const complete = await waitDrained(pool, () => probe.evaluation(), total, o.drainTimeoutMs);
    const drainSeconds = (Date.now() - report.lastAckAt) / 1000;
    clearInterval(sampler);
    const cpu = meter.stop();
    const softirq = softirqMeter.stop();
    const jobs = { ...probe.completed };
    if (!complete) log(`(d) not drained within ${o.drainTimeoutMs / 1000} s of the last publish: figures cover what was evaluated`);
    const rejected = Number((await pool.query<{ n: string }>(`SELECT count(*) n FROM rejections`)).rows[0]!.n);
    if (rejected > 0) throw new Error(`(d) ingest rejected ${rejected} fixes`);
    const alerts = await pool.query<{ subject_id: string; zone: string | null; started: string; late: boolean; e2e: number; ingest: number; worker: number }>(
      `SELECT a.subject_id, z.name AS zone, to_char(a.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS started, a.late,
              ${ms(`a.raised_at - (r.data->>'sent_at')::timestamptz`)} AS e2e,
              ${ms(`r.received_at - (r.data->>'sent_at')::timestamptz`)} AS ingest,
              ${ms('a.raised_at - r.received_at')} AS worker
         FROM alerts a LEFT JOIN zones z ON z.id = a.zone_id
         LEFT JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps' AND r.ts = (a.evidence->-1->>'ts')::timestamptz
        WHERE a.type = 'exclusion_breach'`,
    );
    const others = await pool.query<{ type: string; n: string }>(`SELECT type, count(*) n FROM alerts WHERE type <> 'exclusion_breach' GROUP BY type`);
    const all = await pool.query<{ ms: number }>(`SELECT ${ms(`received_at - (data->>'sent_at')::timestamptz`)} AS ms FROM readings`);
    // ground truth: device i's k-th fix has ts t0 + (k·n + i)·interval/n, rounded to the ms
    const expected = new Map<string, string>();
    p.fleet.forEach((d, i) => {
      if (d.breach) expected.set(p.zones[2 * i]!.subject, new Date(Math.round(t0 + ((d.breach.fromK * o.devices + i) * o.intervalMs) / o.devices)).toISOString());
    });
    const seen = new Map<string, number>();
    let unexpected = 0;
    let wrongStart = 0;
    for (const a of alerts.rows) {
      const want = expected.get(a.subject_id);
      if (!want || a.zone !== 'target') unexpected++;
      else if (a.started !== want) wrongStart++;
      seen.set(a.subject_id, (seen.get(a.subject_id) ?? 0) + 1);
    }
    const missed = [...expected.keys()].filter((s) => !seen.has(s)).length;
    const duplicated = [...seen.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);
    return {
      devices: o.devices,
      offeredPerSec: (o.devices * 1000) / o.intervalMs,
      published: total,
      expected: expected.size,
      raised: alerts.rowCount ?? 0,
      missed,
      duplicated,
      unexpected,
      wrongStart,
      late: alerts.rows.filter((a) => a.late).length,
      otherAlerts: others.rows.map((r) => `${r.type} ${r.n}`).join(', ') || 'none',
      e2e: summarize(alerts.rows.map((a) => Number(a.e2e))),
      ingestLeg: summarize(alerts.rows.map((a) => Number(a.ingest))),
      workerLeg: summarize(alerts.rows.map((a) => Number(a.worker))),
      ingestAll: summarize(all.rows.map((r) => Number(r.ms))),
      maxQueue,
      maxMarks,
      jobs: jobs.jobs,
      jobFixes: jobs.fixes,
      jobDevices: jobs.devices,
      drainSeconds,
      complete,
      maxLagMs: report.maxLagMs,
      cpu,
      softirq,
    };
  } finally {
    await sc.close();
  }
}

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StackEnv } from '../../scripts/stack.js';
import { freePort, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { ConfigSchema } from '../../platform/config.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { createRng } from '../../sim/rng.js';
import { withTimeout } from '../common/procs.js';
import { pollUntil, scope } from '../common/runner.js';
import { startFleet, type GeoDevicePlan } from '../common/fleet.js';
import { queueProbe, startServiceChild, type Mode, type ServiceChild } from '../common/service.js';
import { benchQueuePrefix, createBenchDatabase, type Cleanup } from '../common/setup.js';
import { offset, TOWN } from '../geofence/town.js';
import { reconnectingStream, webhookReceiver } from './deliveries.js';
import { startProxy } from './proxy.js';
import { groundTruth, type FaultRow } from './truth.js';
import { failOverPostgres, failOverRedis, waitHealthy, type Engines } from './engines.js';

/**
 * One fault of the suite, in an environment of its own: a fresh database, a Mosquitto of its
 * own (persistence on, autosave every 5 s: the stack's settings), a queue prefix; ingest, worker
 * and api as separate processes, ingest reaching PostgreSQL through a relay that can be
 * partitioned. The failover rows (FAILOVERS) run on the HA engines instead of the light stack's
 * (engines.ts). A fleet with ground truth publishes for `durationMs`; the fault is injected
 * `faultAtMs` after the start and undone after `downMs`.
 */
export type Fault =
  | 'none'
  | 'kill-ingest'
  | 'kill-worker'
  | 'kill-api'
  | 'mosquitto-restart'
  | 'mosquitto-kill'
  | 'partition-ingest-db'
  | 'clock-fast'
  | 'clock-slow'
  | 'pg-failover'
  | 'redis-failover';

export const FAULTS: Record<Fault, string> = {
  none: 'none (baseline)',
  'kill-ingest': 'SIGKILL ingest, restarted after the pause',
  'kill-worker': 'SIGKILL worker, restarted after the pause',
  'kill-api': 'SIGKILL api, restarted after the pause',
  'mosquitto-restart': 'Mosquitto stopped (SIGTERM) and restarted',
  'mosquitto-kill': 'Mosquitto SIGKILLed and restarted',
  'partition-ingest-db': 'network partition ingest - PostgreSQL',
  'clock-fast': 'device clocks 10 min fast',
  'clock-slow': 'device clocks 10 min slow',
  'pg-failover': 'PostgreSQL primary SIGKILLed (Patroni fails over to the synchronous standby)',
  'redis-failover': 'Redis master SIGKILLed (Sentinel promotes the replica)',
};

/** The rows that run on the HA engines (`stack:up -- --ha`) */
export const FAILOVERS: ReadonlySet<Fault> = new Set(['pg-failover', 'redis-failover']);

export interface FaultOptions {
  devices: number;
  intervalMs: number;
  durationMs: number;
  faultAtMs: number;
  /** how long a killed part or broker stays down */
  downMs: number;
  partitionMs: number;
  /** inside fixes in a row of a breaching device (× interval must exceed the 60 s grace) */
  breachFixes: number;
  breachPct: number;
  drainTimeoutMs: number;
  seed: number;
  /** INGEST_SUBSCRIPTION of the ingest part: shared (default) or exclusive */
  subscription: 'shared' | 'exclusive';
}

export const GRACE_MS = 60_000;

function plan(o: FaultOptions, run: string): GeoDevicePlan[] {
  const rng = createRng(o.seed);
  const K = Math.floor(o.durationMs / o.intervalMs);
  const step = Math.max(1, Math.round(100 / o.breachPct));
  return Array.from({ length: o.devices }, (_, i) => {
    const target = offset(TOWN.lon, TOWN.lat, rng.range(-8000, 8000), rng.range(-8000, 8000));
    const a = rng.range(0, 2 * Math.PI);
    const home = offset(target[0], target[1], 1500 * Math.cos(a), 1500 * Math.sin(a));
    const fromK = rng.int(2, Math.max(3, K - o.breachFixes - 2));
    return { id: `f${run}-${i}`, home, breach: i % step === 0 ? { at: target, fromK, toK: fromK + o.breachFixes } : null };
  });
}

export async function runFault(stack: StackEnv, engines: Engines, cleanups: Cleanup[], fault: Fault, o: FaultOptions, log: (m: string) => void): Promise<FaultRow> {
  const sc = scope(cleanups, `fault ${fault}`);
  try {
    await waitHealthy(engines, log);
    const db = await createBenchDatabase(engines.pgSuperuserUrl, 0, sc.cleanups);
    const prefix = benchQueuePrefix(engines.redis, sc.cleanups);
    const run = prefix.slice(-4);
    const brokerDir = mkdtempSync(join(tmpdir(), 'tagwatch-faults-mqtt-'));
    sc.cleanups.push({ what: 'broker directory', run: () => rmSync(brokerDir, { recursive: true, force: true }) });
    sc.cleanups.push({ what: 'broker', run: () => stopMosquitto(brokerDir) });
    const brokerPort = await freePort();
    const broker = await startMosquitto(brokerDir, brokerPort);
    const pgPort = Number(new URL(db.url).port);
    const proxy = await startProxy(pgPort);
    sc.cleanups.push({ what: 'relay', run: () => proxy.close() });
    const apiPort = await freePort();
    const inherited: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(ConfigSchema.properties)) delete inherited[k];
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      DATABASE_URL: db.url,
      ...engines.redisEnv,
      MQTT_URL: broker.url,
      JWT_SECRET: stack.JWT_SECRET,
      SECRETS_KEY: stack.SECRETS_KEY,
      QUEUE_PREFIX: prefix,
      INGEST_INSTANCE: prefix,
      MQTT_SHARE_GROUP: prefix,
      INGEST_SUBSCRIPTION: o.subscription,
      PORT: String(apiPort),
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOW_PRIVATE: 'true',
    };
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const envOf = (m: Mode) => (m === 'ingest' ? { ...env, DATABASE_URL: url.toString() } : env);
    const parts = new Map<Mode, ServiceChild>();
    sc.cleanups.push({ what: 'service parts', run: async () => void (await Promise.all([...parts.values()].map((c) => c.stop()))) });
    /** every part started, killed ones too: their warnings go in the row's notes */
    const everyPart: ServiceChild[] = [];
    const start = async (m: Mode) => {
      const c = await startServiceChild(m, envOf(m));
      everyPart.push(c);
      parts.set(m, c);
    };

    const fleetPlan = plan(o, run);
    const pool = db.pool;
    const ids = fleetPlan.map((d) => d.id);
    for (let i = 0; i < ids.length; i += 5000) {
      const d = ids.slice(i, i + 5000);
      await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT 's' || x, 's' || x, 'fixed', 'amber', ARRAY['om-faults'] FROM unnest($1::text[]) x`, [d]);
      await pool.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'gps'`, [d]);
      await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT 's' || x, x, now() - interval '11 minutes' FROM unnest($1::text[]) x`, [d]);
    }
    const zoneOf = fleetPlan.map((d) => {
      const c = d.breach?.at ?? offset(d.home[0], d.home[1], 1500, 0);
      return JSON.stringify({ type: 'Point', coordinates: c });
    });
    await pool.query(
      // fitted and zoned 11 minutes ago: a device clock 10 minutes slow still reads inside both
      // (and no device is yet silent for NO_SIGNAL_MS, 15 minutes, before its first reading)
      `INSERT INTO zones (subject_id, kind, name, geometry, radius_m, grace_s, created_by, created_at)
       SELECT 's' || x, 'exclusion', 'target', g::jsonb, 150, $3, 'faults', now() - interval '11 minutes' FROM unnest($1::text[], $2::text[]) AS t(x, g)`,
      [ids, zoneOf, GRACE_MS / 1000],
    );
    await pool.query('ANALYZE');

    for (const m of ['worker', 'ingest', 'api'] as const) await start(m);
    const api = `http://127.0.0.1:${apiPort}`;
    const hook = await webhookReceiver(`faults-secret-${run}-0123456789abcdef`);
    sc.cleanups.push({ what: 'webhook receiver', run: () => hook.close() });
    const reg = await fetch(`${api}/v1/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await mintDevToken(stack.JWT_SECRET, 'sup-hook', 'supervisor')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: hook.url, secret: hook.secret }),
    });
    if (reg.status !== 201) throw new Error(`POST /v1/webhooks: ${reg.status} ${await reg.text()}`);
    const stream = reconnectingStream(`${api}/v1/alerts/stream`, await mintDevToken(stack.JWT_SECRET, 'sup-stream', 'supervisor'));
    sc.cleanups.push({ what: 'SSE client', run: () => stream.close() });
    const probe = await queueProbe(engines.redis, prefix, sc.cleanups);

    const skew = fault === 'clock-fast' ? 600_000 : fault === 'clock-slow' ? -600_000 : 0;
    const fleet = startFleet({
      url: broker.url,
      connections: 4,
      window: 200,
      clientPrefix: `faults-${run}`,
      scenario: { kind: 'geofence', intervalMs: o.intervalMs, devices: fleetPlan },
      durationMs: o.durationMs,
      tolerant: { ackDeadlineMs: o.drainTimeoutMs },
      clockSkewMs: skew,
    });
    sc.cleanups.push({ what: 'fleet', run: () => fleet.stop() });
    await withTimeout(fleet.ready, 60_000, () => 'fleet not ready within 60 s');
    const { started, done } = fleet.go();
    const t0 = await started;
    log(`${fault}: ${o.devices} devices, ${((o.devices * 1000) / o.intervalMs).toFixed(0)} readings/s for ${o.durationMs / 1000} s`);

    // the fault
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + o.faultAtMs - Date.now())));
    const faultAt = Date.now();
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    if (fault.startsWith('kill-')) {
      const m = fault.slice('kill-'.length) as Mode;
      parts.get(m)!.child.kill('SIGKILL');
      await pause(o.downMs);
      await start(m);
    } else if (fault === 'mosquitto-restart' || fault === 'mosquitto-kill') {
      if (fault === 'mosquitto-restart') stopMosquitto(brokerDir);
      else process.kill(Number(readFileSync(join(brokerDir, 'mosquitto.pid'), 'utf8').trim()), 'SIGKILL');
      await pause(o.downMs);
      await startMosquitto(brokerDir, brokerPort);
    } else if (fault === 'partition-ingest-db') {
      proxy.partition();
      await pause(o.partitionMs);
      proxy.heal();
    } else if (fault === 'pg-failover') {
      await failOverPostgres(engines, log);
    } else if (fault === 'redis-failover') {
      await failOverRedis(engines, o.downMs, log);
    }
    const undoneAt = Date.now();
    if (fault !== 'none' && !fault.startsWith('clock')) log(`${fault}: injected at +${((faultAt - t0) / 1000).toFixed(0)} s, undone after ${((undoneAt - faultAt) / 1000).toFixed(1)} s`);

    const report = await withTimeout(done, o.durationMs + o.drainTimeoutMs + 60_000, () => `${fault}: the fleet did not finish`);
    // drained: readings stable, no evaluation pending, every alert on the stream and at the webhook
    let stable = 0;
    let last = -1;
    await pollUntil(async () => {
      const n = Number((await pool.query<{ n: string }>(`SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejections) n`)).rows[0]!.n);
      const alerts = (await pool.query<{ id: string }>(`SELECT id FROM alerts`)).rows.map((r) => r.id);
      const q = (await probe.evaluation()) + (await probe.webhooks());
      const delivered = alerts.every((id) => stream.raised.has(id) && hook.raised().has(id));
      stable = n === last && q === 0 && delivered ? stable + 1 : 0;
      last = n;
      return stable >= 3;
    }, o.drainTimeoutMs, 1000);
    return await groundTruth({ fault, label: FAULTS[fault], o, t0, faultAt, pool, fleetPlan, report, skew, stream, hook, warnings: () => warningsOf(everyPart), tails: () => [...parts.values()].map((c) => `--- ${c.mode}:\n${c.tail()}`).join('\n') });
  } finally {
    await sc.close();
  }
}

/** `mode: message ×n` for the three warnings or errors the parts logged most often */
function warningsOf(parts: ServiceChild[]): string {
  const all = new Map<string, number>();
  for (const p of parts) for (const [msg, n] of p.warnings) all.set(`${p.mode}: ${msg}`, (all.get(`${p.mode}: ${msg}`) ?? 0) + n);
  const top = [...all].sort((a, b) => b[1] - a[1]);
  return top.slice(0, 3).map(([k, n]) => `${k} ×${n}`).join(', ') + (top.length > 3 ? `, … (${top.length - 3} more)` : '');
}

import type { StackEnv } from '../../scripts/stack.js';
import type { Cleanup } from '../common/setup.js';
import { pidsByName, startCpuMeter, type CpuUsage } from '../common/sample.js';
import { withTimeout } from '../common/procs.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { createRng } from '../../sim/rng.js';
import { pollUntil, scope, startSoftirqMeter, summarize, type Summary } from '../common/runner.js';
import { startFleet, type AlertsDevicePlan } from '../common/fleet.js';
import { createEnvironment, queueProbe } from '../common/service.js';
import { openStampedStream, registerWebhook, startReceivers } from './io.js';

/**
 * One pass of bench:alerts: `devices` assigned tags sending status heartbeats, `breachPct` % of
 * them cutting their strap within one minute (a strap_tamper status reading), through MQTT,
 * ingest and the worker into alerts; out through the api's SSE stream (one supervisor) and
 * webhooks (each receiver is one supervisor's webhook, so every alert goes to every receiver),
 * some receivers dead. Latencies run from `sent_at` (stamped by the fleet at publish) to arrival.
 */

export interface PassOptions {
  label: string;
  devices: number;
  breachPct: number;
  heartbeatMs: number;
  receivers: number;
  refused: number;
  hanging: number;
  drainTimeoutMs: number;
  seed: number;
}

export interface PassResult {
  label: string;
  expected: number;
  raised: number;
  publishToRaised: Summary;
  stream: Summary;
  webhook: Summary;
  /** the slowest healthy receiver's p99 and the fastest's */
  receiverP99: { worst: number; best: number };
  healthy: number;
  deliveries: number;
  deliveriesExpected: number;
  duplicates: number;
  badSignatures: number;
  /** healthy deliveries per second from the first tamper publish to the last delivery */
  throughput: number;
  /** healthy deliveries: alert raised → delivery row (dispatcher), row → delivered (queue + attempt), and one attempt's HTTP time */
  dispatchLeg: Summary;
  deliverLeg: Summary;
  /** delivery row → start of the attempt that delivered it (queue wait, admission, row read) */
  queueLeg: Summary;
  attemptMs: Summary;
  deadAttempts: number;
  deadAttemptMs: number;
  complete: boolean;
  cpu: CpuUsage;
  softirq: number;
}

const sentAt = (alert: { evidence: Array<{ sent_at?: string }> }) => Date.parse(alert.evidence[0]?.sent_at ?? '');
const WINDOW_MS = 60_000;
const LEAD_MS = 5_000;

export async function runPass(stack: StackEnv, cleanups: Cleanup[], o: PassOptions, log: (m: string) => void, settle: () => Promise<void>): Promise<PassResult> {
  const sc = scope(cleanups, `pass ${o.label}`);
  try {
    const env = await createEnvironment(stack, sc.cleanups);
    const run = env.prefix.slice(-4);
    const rng = createRng(o.seed);
    const breaches = Math.max(1, Math.round((o.devices * o.breachPct) / 100));
    const step = Math.floor(o.devices / breaches);
    const plan: AlertsDevicePlan[] = Array.from({ length: o.devices }, (_, i) => ({
      id: `t${run}-${i}`,
      tamperAtMs: i % step === 0 && i / step < breaches ? Math.round(LEAD_MS + rng.range(0, WINDOW_MS)) : null,
    }));
    const ids = plan.map((d) => d.id);
    const pool = env.db.pool;
    for (let i = 0; i < ids.length; i += 5000) {
      const chunk = ids.slice(i, i + 5000);
      await pool.query(
        `INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids)
         SELECT 's' || id, 'Subject ' || id, 'fixed', 'red', ARRAY['om-' || (o % 400)::int] FROM unnest($1::text[]) WITH ORDINALITY AS t(id, o)`,
        [chunk],
      );
      await pool.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'combined'`, [chunk]);
      await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT 's' || id, id, now() FROM unnest($1::text[]) id`, [chunk]);
    }
    await pool.query('ANALYZE');
    const receivers = await startReceivers(o.receivers, o.refused, o.hanging);
    sc.cleanups.push({ what: 'webhook receivers', run: async () => void (await Promise.all(receivers.map((r) => r.close()))) });
    await env.start(['worker', 'ingest', 'api']);
    const api = `http://127.0.0.1:${env.port}`;
    for (let k = 0; k < receivers.length; k++) await registerWebhook(api, await mintDevToken(stack.JWT_SECRET, `sup-${k}`, 'supervisor'), receivers[k]!);
    const stream = await openStampedStream(`${api}/v1/alerts/stream`, await mintDevToken(stack.JWT_SECRET, 'sup-stream', 'supervisor'));
    sc.cleanups.push({ what: 'SSE client', run: () => stream.close() });
    const probe = await queueProbe(stack.REDIS_URL, env.prefix, sc.cleanups);
    const fleet = startFleet({
      url: env.broker.url,
      connections: 4,
      window: 100,
      clientPrefix: `fleet-${run}`,
      scenario: { kind: 'alerts', intervalMs: o.heartbeatMs, devices: plan },
      durationMs: LEAD_MS + WINDOW_MS + 5_000,
    });
    sc.cleanups.push({ what: 'fleet publisher', run: () => fleet.stop() });
    await withTimeout(fleet.ready, 60_000, () => 'fleet publisher not ready within 60 s');
    await settle();
    const pids = Object.fromEntries(env.children.map((c) => [c.mode, [c.pid]]));
    const meter = startCpuMeter(() => ({ ...pids, fleet: [fleet.pid], mosquitto: [env.broker.pid], postgres: pidsByName('postgres'), redis: pidsByName('redis-server'), bench: [process.pid] }));
    const softirqMeter = startSoftirqMeter();
    const healthy = receivers.filter((r) => r.kind === 'healthy');
    const { started, done } = fleet.go();
    const t0 = await started;
    log(`${o.label}: ${breaches} of ${o.devices} tags cut their strap within one minute; ${healthy.length} healthy receivers`);
    await withTimeout(done, 5 * 60_000, () => `${o.label}: the fleet did not finish publishing\n${env.tails()}`);
    const complete = await pollUntil(
      async () => stream.events.filter((e) => e.data.action === 'raised').length >= breaches && healthy.every((r) => new Set(r.received.filter((x) => x.json.event === 'raised').map((x) => x.delivery)).size >= breaches),
      o.drainTimeoutMs,
      250,
    );
    const cpu = meter.stop();
    const softirq = softirqMeter.stop();
    if (!complete) log(`${o.label}: not everything arrived within ${o.drainTimeoutMs / 1000} s of the last publish; webhook queue ${await probe.webhooks()}`);

    const alerts = await pool.query<{ ms: number }>(
      `SELECT extract(epoch FROM raised_at - (evidence->0->>'sent_at')::timestamptz) * 1000 AS ms FROM alerts WHERE type = 'strap_tamper'`,
    );
    const streamMs = stream.events.filter((e) => e.data.action === 'raised' && e.data.alert.type === 'strap_tamper').map((e) => e.at - sentAt(e.data.alert));
    const perReceiver: number[][] = [];
    let deliveries = 0;
    let duplicates = 0;
    let badSignatures = 0;
    let lastAt = t0;
    for (const r of healthy) {
      const got = r.received.filter((x) => x.json.event === 'raised');
      const unique = new Set(got.map((x) => x.delivery));
      deliveries += unique.size;
      duplicates += got.length - unique.size;
      badSignatures += got.filter((x) => !x.validSignature).length;
      for (const x of got) lastAt = Math.max(lastAt, x.at);
      perReceiver.push(got.map((x) => x.at - sentAt((x.json as unknown as { alert: { evidence: Array<{ sent_at?: string }> } }).alert)));
    }
    const p99s = perReceiver.filter((x) => x.length).map((x) => summarize(x).p99);
    const dead = await pool.query<{ n: string; ms: number | null }>(
      `SELECT count(*) n, avg(a.duration_ms)::float8 ms FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
         JOIN webhooks w ON w.id = d.webhook_id WHERE w.url = ANY($1::text[])`,
      [receivers.filter((r) => r.kind !== 'healthy').map((r) => r.url)],
    );
    const healthyUrls = healthy.map((r) => r.url);
    const legs = await pool.query<{ dispatch: number; deliver: number; queued: number }>(
      `SELECT extract(epoch FROM d.created_at - a.raised_at) * 1000 AS dispatch, extract(epoch FROM d.delivered_at - d.created_at) * 1000 AS deliver,
              extract(epoch FROM (SELECT max(t.at) FROM webhook_attempts t WHERE t.delivery_id = d.id) - d.created_at) * 1000 AS queued
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN alert_events e ON e.id = d.event_id JOIN alerts a ON a.id = e.alert_id
        WHERE w.url = ANY($1::text[]) AND e.action = 'raised' AND d.status = 'delivered'`,
      [healthyUrls],
    );
    const attempts = await pool.query<{ ms: number }>(
      `SELECT t.duration_ms AS ms FROM webhook_attempts t JOIN webhook_deliveries d ON d.id = t.delivery_id JOIN webhooks w ON w.id = d.webhook_id WHERE w.url = ANY($1::text[])`,
      [healthyUrls],
    );
    const firstTamper = t0 + Math.min(...plan.flatMap((d) => (d.tamperAtMs === null ? [] : [d.tamperAtMs])));
    return {
      label: o.label,
      expected: breaches,
      raised: alerts.rowCount ?? 0,
      publishToRaised: summarize(alerts.rows.map((r) => Number(r.ms))),
      stream: summarize(streamMs),
      webhook: summarize(perReceiver.flat()),
      receiverP99: { worst: Math.max(...p99s), best: Math.min(...p99s) },
      healthy: healthy.length,
      deliveries,
      deliveriesExpected: breaches * healthy.length,
      duplicates,
      badSignatures,
      throughput: deliveries / Math.max(0.001, (lastAt - firstTamper) / 1000),
      dispatchLeg: summarize(legs.rows.map((r) => Number(r.dispatch))),
      deliverLeg: summarize(legs.rows.map((r) => Number(r.deliver))),
      queueLeg: summarize(legs.rows.map((r) => Number(r.queued))),
      attemptMs: summarize(attempts.rows.map((r) => Number(r.ms))),
      deadAttempts: Number(dead.rows[0]!.n),
      deadAttemptMs: dead.rows[0]!.ms ?? NaN,
      complete,
      cpu,
      softirq,
    };
  } finally {
    await sc.close();
  }
}

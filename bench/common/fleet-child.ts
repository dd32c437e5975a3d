import mqtt, { type MqttClient } from 'mqtt';
import { geoFix, statusReading, tamperReading, type FleetJob, type FleetReport } from './fleet.js';

/**
 * The fleet publisher process (see fleet.ts): parent sends `job`, we connect and answer
 * `ready`; parent sends `go`, we answer `started` with t0 and publish on schedule at QoS 1,
 * then `done` once the broker has acknowledged everything.
 */

function send(r: FleetReport): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(r, undefined, {}, () => resolve()) : resolve()));
}

async function connectAll(job: FleetJob): Promise<MqttClient[]> {
  const clients = Array.from({ length: job.connections }, (_, i) =>
    mqtt.connect(job.url, { clientId: `${job.clientPrefix}-${i}`, clean: true, reconnectPeriod: job.tolerant ? 500 : 0, connectTimeout: 10_000, keepalive: job.tolerant ? 5 : 60 }),
  );
  await Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => (c.once('connect', () => resolve()), c.once('error', reject)))));
  for (const c of clients) c.on('error', (err) => void (job.tolerant ? undefined : send({ type: 'error', message: `connection: ${err.message}` })));
  return clients;
}

interface Extra {
  dueMs: number;
  device: number;
}

async function run(job: FleetJob, go: Promise<void>): Promise<void> {
  const clients = await connectAll(job);
  const inflight = new Array<number>(clients.length).fill(0);
  const sc = job.scenario;
  const n = sc.devices.length;
  const extras: Extra[] =
    sc.kind === 'alerts'
      ? sc.devices.flatMap((d, i) => (d.tamperAtMs === null ? [] : [{ dueMs: d.tamperAtMs, device: i }])).sort((a, b) => a.dueMs - b.dueMs)
      : [];
  const periodicTotal = Math.ceil((job.durationMs * n) / sc.intervalMs);
  const skew = job.clockSkewMs ?? 0;
  // periodic message m acknowledged by the broker (the fault suite's ground truth)
  const ackedBits = new Uint8Array(Math.ceil(periodicTotal / 8));
  await send({ type: 'ready' });
  await go;
  const t0 = Date.now();
  await send({ type: 'started', t0 });

  let m = 0; // next periodic message
  let e = 0; // next extra message
  let acked = 0;
  let cursor = 0;
  let maxLagMs = 0;
  const total = periodicTotal + extras.length;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));

  const publish = (topic: string, reading: Record<string, unknown>, periodic = -1): boolean => {
    for (let tries = 0; tries < clients.length; tries++) {
      const c = cursor;
      cursor = (cursor + 1) % clients.length;
      if (inflight[c]! >= job.window) continue;
      inflight[c]!++;
      reading.sent_at = new Date().toISOString();
      clients[c]!.publish(topic, JSON.stringify(reading), { qos: 1 }, (err) => {
        if (err && !job.tolerant) return void send({ type: 'error', message: `publish failed: ${err.message}` });
        inflight[c]!--;
        if (!err && periodic >= 0) ackedBits[periodic >> 3]! |= 1 << (periodic & 7);
        if (++acked === total) finish();
      });
      return true;
    }
    return false;
  };

  const tick = () => {
    const now = Date.now();
    for (;;) {
      const periodicDue = m < periodicTotal ? t0 + (m * sc.intervalMs) / n : Infinity;
      const extraDue = e < extras.length ? t0 + extras[e]!.dueMs : Infinity;
      const due = Math.min(periodicDue, extraDue);
      if (due > now) break;
      let ok: boolean;
      if (extraDue <= periodicDue) {
        const x = extras[e]!;
        ok = publish(`tags/v1/${sc.devices[x.device]!.id}/status`, tamperReading(Math.round(due) + skew));
        if (ok) e++;
      } else {
        const i = m % n;
        const k = Math.floor(m / n);
        const ts = Math.round(due) + skew;
        if (sc.kind === 'geofence') ok = publish(`tags/v1/${sc.devices[i]!.id}/gps`, geoFix(sc.devices[i]!, i, k, ts), m);
        else {
          const d = sc.devices[i]!;
          ok = publish(`tags/v1/${d.id}/status`, statusReading(d, i, k, ts, d.tamperAtMs !== null && due - t0 > d.tamperAtMs), m);
        }
        if (ok) m++;
      }
      maxLagMs = Math.max(maxLagMs, now - due);
      if (!ok) break;
    }
    if (m < periodicTotal || e < extras.length) setTimeout(tick, 5);
  };
  if (total === 0) finish();
  else tick();
  if (job.tolerant) {
    // some publishes may never be acknowledged (a broker killed with them): stop waiting in time
    const deadline = t0 + job.durationMs + job.tolerant.ackDeadlineMs;
    await Promise.race([finished, new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
  } else await finished;
  const lastAckAt = Date.now();
  await Promise.all(clients.map((c) => c.endAsync(!!job.tolerant).catch(() => undefined)));
  await send({
    type: 'done',
    published: periodicTotal,
    extra: extras.length,
    lastAckAt,
    maxLagMs,
    ...(job.tolerant ? { acked, ackedBitmap: Buffer.from(ackedBits).toString('base64') } : {}),
  });
}

let goSignal: () => void = () => {};
const go = new Promise<void>((r) => (goSignal = r));
process.on('message', (msg: { type: 'job'; job: FleetJob } | { type: 'go' }) => {
  if (msg.type === 'go') goSignal();
  else
    run(msg.job, go).catch(async (err: Error) => {
      await send({ type: 'error', message: err.message });
      process.exit(1);
    });
});
process.on('disconnect', () => process.exit(0));

import { Queue, Worker } from 'bullmq';
import type { Part, Runtime } from '../platform/runtime.js';
import { createDeviceReadingsQueue, DEVICE_READINGS_QUEUE, restoreDirty, sweepDirty, takeDirty, type DeviceReadingsJob, type DirtyDevices } from '../signals/queues.js';
import type { Stream } from '../ingest/telemetry.js';
import { applyRetentionPolicy, deleteExpiredReadings } from '../ingest/retention.js';
import { STREAMS } from '../ingest/telemetry.js';
import { evaluateDevicesGeofence, type GeofenceDeps } from '../geofence/evaluate.job.js';
import { tickCurfews } from '../geofence/curfew.job.js';
import { evaluateDeviceAlcohol } from '../alcohol/evaluate.job.js';
import { paramsFrom, type AlcoholParams } from '../alcohol/params.js';
import { evaluateDevicesHealth, tickHealth } from '../health/health.job.js';
import { createEmailWorker, createTransport, dispatchEmails, EMAIL_QUEUE, requeuePendingEmails, type EmailJob } from '../alerts/email.js';
import { createFeedDrainer } from '../alerts/drain.js';
import { createDispatchState, createWebhookWorker, deliverySettings, dispatchFeed, requeuePending, WEBHOOK_QUEUE, type DeliveryJob } from '../alerts/webhooks.js';

export const MAINTENANCE_QUEUE = 'maintenance';
/** Evaluation jobs run at once: each is a batch of devices holding one pooled connection at a time. */
export const EVALUATION_CONCURRENCY = 4;

/**
 * Worker: evaluates devices with new readings (queue `device-readings`), and runs the scheduled
 * maintenance jobs: the curfew clock every minute and retention on plain PostgreSQL hourly.
 */
export async function startWorker(rt: Runtime): Promise<Part> {
  const prefix = rt.config.QUEUE_PREFIX;
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: rt.redis, prefix });
  await maintenance.upsertJobScheduler('retention', { every: 3_600_000 }, { name: 'retention' });
  await maintenance.upsertJobScheduler('curfew-tick', { every: 60_000 }, { name: 'curfew-tick' });
  await maintenance.upsertJobScheduler('health-tick', { every: 60_000 }, { name: 'health-tick' });
  await maintenance.upsertJobScheduler('webhook-requeue', { every: 60_000 }, { name: 'webhook-requeue' });
  await maintenance.upsertJobScheduler('dirty-sweep', { every: 60_000 }, { name: 'dirty-sweep' });
  const deviceQueue = createDeviceReadingsQueue(rt.redis, prefix);
  const webhookQueue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection: rt.redis, prefix });
  const webhookWorker = createWebhookWorker(rt.pool, rt.redis.duplicate(), prefix, rt.logger, deliverySettings(rt.config), {}, rt.metrics);
  const dispatchState = createDispatchState();
  const dispatcher = createFeedDrainer(rt, 'webhook dispatch', () => dispatchFeed(rt.pool, webhookQueue, webhookWorker.hooks, dispatchState));
  const email = startEmail(rt);
  const deps = { pool: rt.pool, logger: rt.logger, metrics: rt.metrics };
  const alcoholParams = paramsFrom(rt.config.ALCOHOL_PARAMS);
  const maintenanceWorker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      if (job.name === 'curfew-tick') return { raised: (await tickCurfews(deps, Date.now())).length };
      if (job.name === 'health-tick') {
        const r = await tickHealth(deps, Date.now(), rt.config.ESCALATE_AFTER_MINUTES * 60_000);
        return { raised: r.raised.length, escalated: r.escalated.length };
      }
      if (job.name === 'webhook-requeue') return { requeued: await requeuePending(rt.pool, webhookQueue), emails: email ? await email.requeue() : 0 };
      if (job.name === 'dirty-sweep') return { devices: await sweepDirty(deviceQueue, rt.redis, prefix) };
      if (rt.storage === 'timescaledb') return { mode: 'timescaledb', deleted: 0 }; // the policy drops chunks
      const deleted = await deleteExpiredReadings(rt.pool, rt.config.RETENTION_DAYS, new Date());
      rt.logger.info({ deleted, days: rt.config.RETENTION_DAYS }, 'retention: expired readings deleted');
      return { mode: 'postgresql', deleted };
    },
    { connection: rt.redis.duplicate(), prefix },
  );
  maintenanceWorker.on('failed', (job, err) => rt.logger.warn({ job: job?.name, err: err.message }, 'maintenance job failed'));
  const evaluation = new Worker<DeviceReadingsJob>(
    DEVICE_READINGS_QUEUE,
    async (job) => {
      const devices = [...new Set(job.data.devices)].sort();
      const marks = await takeDirty(rt.redis, prefix, devices, STREAMS);
      // a job started before may have taken marks and died: evaluate after the watermarks anyway
      const sweep = job.data.sweep === true || job.attemptsStarted > 1;
      const r = await evaluateDeviceBatch({ ...deps, alcoholParams }, devices, marks, sweep, Date.now());
      if (r.failed.size) {
        const failed = [...r.failed.keys()];
        await restoreDirty(rt.redis, prefix, new Map(failed.map((d) => [d, marks.get(d) ?? {}])));
        await job.updateData({ ...job.data, devices: failed }); // the retry is for these alone
        const [first, err] = [...r.failed][0]!;
        throw new Error(`${failed.length} of ${devices.length} devices failed (${first}: ${err.message})`);
      }
      return { devices: devices.length, fixes: r.fixes, alerts: r.alerts };
    },
    { connection: rt.redis.duplicate(), prefix, concurrency: EVALUATION_CONCURRENCY },
  );
  evaluation.on('failed', (job, err) => rt.logger.warn({ devices: job?.data.devices.length, err: err.message }, 'evaluation failed; retried with backoff'));
  await applyRetentionPolicy(rt.pool, rt.config.RETENTION_DAYS);
  return {
    name: 'worker',
    async stop() {
      await dispatcher.close();
      await email?.close();
      await evaluation.close();
      await webhookWorker.close();
      await webhookQueue.close();
      await deviceQueue.close();
      await maintenanceWorker.close();
      await maintenance.close();
    },
  };
}

export interface BatchResult {
  fixes: number;
  alerts: number;
  /** devices whose evaluation failed: nothing after the step that failed ran for them */
  failed: Map<string, Error>;
}

/**
 * Evaluates a batch of devices with the marks taken for them: geofence (devices with new fixes,
 * or all in a sweep) and health (devices with any mark, or all in a sweep) in one transaction
 * each for the whole batch, alcohol per device with new alcohol readings. When a batch transaction fails, its devices are evaluated one by
 * one, so a device that cannot be evaluated fails alone and the others go through.
 */
export async function evaluateDeviceBatch(
  deps: GeofenceDeps & { alcoholParams: AlcoholParams },
  devices: readonly string[],
  marks: DirtyDevices,
  sweep: boolean,
  now: number,
): Promise<BatchResult> {
  const out: BatchResult = { fixes: 0, alerts: 0, failed: new Map() };
  const markOf = (d: string): Partial<Record<Stream, number>> => marks.get(d) ?? {};
  const gps = devices.filter((d) => sweep || markOf(d).gps !== undefined).map((deviceId) => ({ deviceId, dirtyFrom: markOf(deviceId).gps ?? null }));
  const geofence = await alone(gps, (b) => evaluateDevicesGeofence(deps, b), (b) => b.deviceId, out.failed);
  for (const r of geofence.flatMap((g) => [...g.devices.values()])) {
    out.fixes += r.fixes;
    out.alerts += r.raised.length;
  }
  for (const g of geofence) for (const [d, err] of g.failed) out.failed.set(d, err);
  for (const d of devices) {
    if (out.failed.has(d) || (!sweep && markOf(d).alcohol === undefined)) continue;
    try {
      out.alerts += (await evaluateDeviceAlcohol({ ...deps, params: deps.alcoholParams }, d, markOf(d).alcohol ?? null, now)).length;
    } catch (err) {
      out.failed.set(d, err as Error);
    }
  }
  // a device without marks had them taken by another job, which sees to its health
  const healthy = devices.filter((d) => !out.failed.has(d) && (sweep || Object.keys(markOf(d)).length > 0)).map((deviceId) => ({ deviceId, dirty: markOf(deviceId) }));
  const health = await alone(healthy, (b) => evaluateDevicesHealth(deps, b, now), (b) => b.deviceId, out.failed);
  for (const h of health) for (const raised of h.values()) out.alerts += raised.length;
  return out;
}

/** Runs `fn` on the whole batch; if that throws, on each item alone, recording the items that fail. */
async function alone<T, R>(batch: T[], fn: (b: T[]) => Promise<R>, id: (t: T) => string, failed: Map<string, Error>): Promise<R[]> {
  if (batch.length === 0) return [];
  try {
    return [await fn(batch)];
  } catch (err) {
    if (batch.length === 1) {
      failed.set(id(batch[0]!), err as Error);
      return [];
    }
  }
  const out: R[] = [];
  for (const item of batch) {
    try {
      out.push(await fn([item]));
    } catch (err) {
      failed.set(id(item), err as Error);
    }
  }
  return out;
}

/** Alert email (alerts/email.ts), when SMTP_URL is set: the dispatcher, the queue and its worker. */
function startEmail(rt: Runtime) {
  const smtpUrl = rt.config.SMTP_URL;
  if (!smtpUrl) return null;
  const prefix = rt.config.QUEUE_PREFIX;
  const settings = { smtpUrl, from: rt.config.EMAIL_FROM, consoleUrl: rt.config.CONSOLE_URL };
  const transport = createTransport(smtpUrl);
  const queue = new Queue<EmailJob>(EMAIL_QUEUE, { connection: rt.redis, prefix });
  const worker = createEmailWorker(rt.pool, transport, settings, rt.redis.duplicate(), prefix, rt.logger, rt.metrics);
  const state = { reader: null };
  const drainer = createFeedDrainer(rt, 'email dispatch', () => dispatchEmails(rt.pool, queue, Date.now(), state));
  return {
    requeue: () => requeuePendingEmails(rt.pool, queue),
    async close() {
      await drainer.close();
      await worker.close();
      await queue.close();
      transport.close();
    },
  };
}

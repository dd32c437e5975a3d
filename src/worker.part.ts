import { Queue, Worker } from 'bullmq';
import type { Part, Runtime } from './runtime.js';
import { createDeviceReadingsQueue, DEVICE_READINGS_QUEUE, restoreDirty, sweepDirty, takeDirty, type DeviceReadingsJob } from './queues.js';
import { applyRetentionPolicy, deleteExpiredReadings } from './retention.js';
import { STREAMS } from '../ingest/telemetry.js';
import { evaluateDeviceGeofence, tickCurfews } from '../geofence/evaluate.job.js';
import { evaluateDeviceAlcohol } from '../alcohol/evaluate.job.js';
import { paramsFrom } from '../alcohol/params.js';
import { evaluateDeviceHealth, tickHealth } from '../alerts/health.job.js';
import { createFeedHub } from '../alerts/feed.js';
import { createDispatchState, createWebhookWorker, deliverySettings, dispatchFeed, requeuePending, WEBHOOK_QUEUE, type DeliveryJob, type DispatchHooks } from '../alerts/webhooks.js';

export const MAINTENANCE_QUEUE = 'maintenance';
export const EVALUATION_CONCURRENCY = 8;

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
  const webhookWorker = createWebhookWorker(rt.pool, rt.redis.duplicate(), prefix, rt.logger, deliverySettings(rt.config));
  const dispatcher = createDispatcher(rt, webhookQueue, webhookWorker.hooks);
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
      if (job.name === 'webhook-requeue') return { requeued: await requeuePending(rt.pool, webhookQueue) };
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
      await job.removeDeduplicationKey(); // readings committed from now on get a new job
      const dirty = await takeDirty(rt.redis, prefix, job.data.deviceId, STREAMS);
      try {
        const geofence = dirty.gps !== undefined || job.data.sweep ? await evaluateDeviceGeofence(deps, job.data.deviceId, dirty.gps ?? null) : null;
        const alcohol =
          dirty.alcohol !== undefined || job.data.sweep
            ? await evaluateDeviceAlcohol({ ...deps, params: alcoholParams }, job.data.deviceId, dirty.alcohol ?? null, Date.now())
            : [];
        const health = await evaluateDeviceHealth(deps, job.data.deviceId, dirty, Date.now());
        return { fixes: geofence?.fixes ?? 0, alerts: (geofence?.raised.length ?? 0) + alcohol.length + health.length };
      } catch (err) {
        await restoreDirty(rt.redis, prefix, job.data.deviceId, dirty);
        throw err;
      }
    },
    { connection: rt.redis.duplicate(), prefix, concurrency: EVALUATION_CONCURRENCY },
  );
  evaluation.on('failed', (job, err) => rt.logger.warn({ device: job?.data.deviceId, err: err.message }, 'evaluation failed; retried with backoff'));
  await applyRetentionPolicy(rt.pool, rt.config.RETENTION_DAYS);
  return {
    name: 'worker',
    async stop() {
      await dispatcher.close();
      await evaluation.close();
      await webhookWorker.close();
      await webhookQueue.close();
      await deviceQueue.close();
      await maintenanceWorker.close();
      await maintenance.close();
    },
  };
}

/**
 * Moves new alert feed events into webhook deliveries: on each announcement from the database,
 * and every 2 s in case one was missed.
 */
function createDispatcher(rt: Runtime, queue: Queue<DeliveryJob>, hooks: DispatchHooks) {
  const hub = createFeedHub(rt.config.DATABASE_URL, rt.pool, rt.logger);
  const state = createDispatchState();
  let running: Promise<void> | null = null;
  let again = false;
  const run = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        while ((await dispatchFeed(rt.pool, queue, hooks, state)) > 0);
      } while (again);
    })()
      .catch((err: Error) => rt.logger.warn({ err: err.message }, 'webhook dispatch failed; retried'))
      .finally(() => {
        running = null;
      });
    return running;
  };
  hub.subscribe(() => void run());
  void hub.start();
  const timer = setInterval(() => void run(), 2000);
  return {
    async close() {
      clearInterval(timer);
      await hub.close();
      await running;
    },
  };
}

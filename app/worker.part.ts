import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { logRedisErrors, type Part, type Runtime } from '../platform/runtime.js';
import { createDeviceReadingsQueue, DEVICE_READINGS_QUEUE, sweepDirty, type DeviceReadingsJob } from '../signals/queues.js';
import { applyRetentionPolicy, deleteExpiredPersonalData, purgeAuditLog } from '../ingest/retention.js';
import { createPool } from '../platform/db.js';
import { tickCurfews } from '../geofence/curfew.job.js';
import { paramsFrom } from '../alcohol/params.js';
import { tickHealth } from '../health/health.job.js';
import { runEvaluationJob } from '../evaluation/evaluate.job.js';
import { createEmailWorker, createTransport, dispatchEmails, EMAIL_QUEUE, requeuePendingEmails, type EmailJob } from '../alerts/email.js';
import { createFeedDrainer } from '../alerts/drain.js';
import { createOutboxState } from '../alerts/outbox.js';
import { prepareWebhookSecrets } from '../alerts/secrets.js';
import { purgeExpiredConsoleState } from '../console/sessions.repo.js';
import { CRIME_QUEUE, requeueOpenRuns, runCrimeMatch, type CrimeJob } from '../crime/match.job.js';
import { compactGpsHourLog, TrailCache } from '../crime/trail-cache.js';
import { createWebhookWorker, deliverySettings, dispatchFeed, requeuePending, WEBHOOK_QUEUE, type DeliveryJob } from '../alerts/webhooks.js';

export const MAINTENANCE_QUEUE = 'maintenance';
/** Evaluation jobs run at once: each is a batch of devices holding one pooled connection at a time. */
export const EVALUATION_CONCURRENCY = 4;
/** How often expired console sessions, sign-ins and stated reasons are purged (ms). */
export const CONSOLE_HOUSEKEEPING_MS = 5 * 60_000;

/**
 * Worker: evaluates devices with new readings (queue `device-readings`), and runs the scheduled
 * maintenance jobs: the curfew clock every minute, console housekeeping every 5 minutes and
 * retention hourly. Retention runs as the
 * schema owner (MIGRATION_DATABASE_URL; DATABASE_URL in single-role mode): a pool of one
 * connection that nothing else uses.
 */
export async function startWorker(rt: Runtime): Promise<Part> {
  const prefix = rt.config.QUEUE_PREFIX;
  const webhookSettings = deliverySettings(rt.config);
  await prepareWebhookSecrets(rt.pool, webhookSettings.secretsKey, rt.logger); // refuses to start without SECRETS_KEY once webhooks exist
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: rt.redis, prefix });
  await maintenance.upsertJobScheduler('retention', { every: 3_600_000 }, { name: 'retention' });
  await maintenance.upsertJobScheduler('curfew-tick', { every: 60_000 }, { name: 'curfew-tick' });
  await maintenance.upsertJobScheduler('health-tick', { every: 60_000 }, { name: 'health-tick' });
  await maintenance.upsertJobScheduler('webhook-requeue', { every: 60_000 }, { name: 'webhook-requeue' });
  await maintenance.upsertJobScheduler('dirty-sweep', { every: 60_000 }, { name: 'dirty-sweep' });
  await maintenance.upsertJobScheduler('crime-requeue', { every: 60_000 }, { name: 'crime-requeue' });
  // expired console sessions, sign-ins and stated reasons (not only at sign-in: docs/console.md)
  await maintenance.upsertJobScheduler('console-housekeeping', { every: CONSOLE_HOUSEKEEPING_MS }, { name: 'console-housekeeping' });
  const deviceQueue = createDeviceReadingsQueue(rt.redis, prefix);
  const webhookQueue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection: rt.redis, prefix });
  const webhookWorker = createWebhookWorker(rt.pool, rt.redisConnection(), prefix, rt.logger, webhookSettings, {}, rt.metrics);
  const dispatchState = createOutboxState();
  const crimeQueue = new Queue<CrimeJob>(CRIME_QUEUE, { connection: rt.redis, prefix });
  // the last CRIME_TRAIL_CACHE_HOURS of trails held in memory with their R-trees (crime/trail-cache.ts)
  const trailCache = rt.config.CRIME_TRAIL_CACHE_HOURS > 0 ? new TrailCache({ hours: rt.config.CRIME_TRAIL_CACHE_HOURS, retentionDays: rt.config.RETENTION_DAYS, logger: rt.logger }) : null;
  const refreshTrails = () => {
    if (trailCache?.due()) trailCache.refresh(rt.pool).catch((err: Error) => rt.logger.warn({ err: err.message }, 'crime trail cache not loaded'));
  };
  refreshTrails();
  // one run at a time: a run holds a time group of trails in memory; the lock outlives an index build
  const crimeWorker = new Worker<CrimeJob>(CRIME_QUEUE, (job) => runCrimeMatch(rt.pool, job.data.runId, rt.logger, trailCache), {
    connection: rt.redisConnection(),
    prefix,
    concurrency: 1,
    lockDuration: 300_000,
  });
  crimeWorker.on('failed', (job, err) => rt.logger.warn({ run: job?.data.runId, err: err.message }, 'crime matching run failed'));
  const dispatcher = createFeedDrainer(rt, 'webhook dispatch', () => dispatchFeed(rt.pool, webhookQueue, webhookWorker.hooks, dispatchState));
  const email = startEmail(rt);
  const deps = { pool: rt.pool, logger: rt.logger, metrics: rt.metrics };
  const alcoholParams = paramsFrom(rt.config.ALCOHOL_PARAMS);
  const ownerPool = createPool(rt.config.MIGRATION_DATABASE_URL ?? rt.config.DATABASE_URL, 1, rt.logger);
  const maintenanceWorker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      if (job.name === 'curfew-tick') return { raised: (await tickCurfews(deps, Date.now())).length };
      if (job.name === 'health-tick') {
        const r = await tickHealth(deps, Date.now(), rt.config.ESCALATE_AFTER_MINUTES * 60_000);
        return { raised: r.raised.length, escalated: r.escalated.length };
      }
      if (job.name === 'webhook-requeue') return { requeued: await requeuePending(rt.pool, webhookQueue), emails: email ? await email.requeue() : 0 };
      if (job.name === 'crime-requeue') {
        refreshTrails(); // in the background: a load must not hold up the other ticks
        return { runs: await requeueOpenRuns(rt.pool, crimeQueue) };
      }
      if (job.name === 'console-housekeeping') return purgeExpiredConsoleState(rt.pool, new Date());
      if (job.name === 'dirty-sweep') return { devices: await sweepDirty(deviceQueue, rt.redis, prefix) };
      if (job.name !== 'retention') throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
      return runRetention(rt, ownerPool);
    },
    { connection: rt.redisConnection(), prefix },
  );
  maintenanceWorker.on('failed', (job, err) => rt.logger.warn({ job: job?.name, err: err.message }, 'maintenance job failed'));
  const evaluation = new Worker<DeviceReadingsJob>(
    DEVICE_READINGS_QUEUE,
    (job) => runEvaluationJob({ ...deps, alcoholParams }, rt.redis, prefix, job),
    { connection: rt.redisConnection(), prefix, concurrency: EVALUATION_CONCURRENCY },
  );
  evaluation.on('completed', (_job, r: { devices?: number; fixes?: number } | undefined) => {
    rt.metrics.evaluationJobs.inc();
    rt.metrics.evaluationDevices.inc(r?.devices ?? 0);
    rt.metrics.evaluationFixes.inc(r?.fixes ?? 0);
  });
  evaluation.on('failed', (job, err) => rt.logger.warn({ devices: job?.data.devices.length, err: err.message }, 'evaluation failed; retried with backoff'));
  logRedisErrors(rt, 'maintenance', maintenance, maintenanceWorker);
  logRedisErrors(rt, 'device-readings', deviceQueue, evaluation);
  logRedisErrors(rt, 'webhooks', webhookQueue, webhookWorker.worker);
  logRedisErrors(rt, 'crime', crimeQueue, crimeWorker);
  await applyRetentionPolicy(ownerPool, rt.config.RETENTION_DAYS).catch((err: Error) =>
    rt.logger.warn({ err: err.message }, 'retention policy not set: set MIGRATION_DATABASE_URL (the schema owner) for the worker'),
  );
  return {
    name: 'worker',
    async stop() {
      await dispatcher.close();
      await email?.close();
      await evaluation.close();
      await crimeWorker.close();
      await crimeQueue.close();
      await webhookWorker.close();
      await webhookQueue.close();
      await deviceQueue.close();
      await maintenanceWorker.close();
      await maintenance.close();
      await ownerPool.end();
    },
  };
}

/** The hourly retention job: personal data past RETENTION_DAYS, audit rows past AUDIT_RETENTION_DAYS. */
async function runRetention(rt: Runtime, ownerPool: ReturnType<typeof createPool>) {
  const now = new Date();
  const deleted = await deleteExpiredPersonalData(ownerPool, rt.config.RETENTION_DAYS, now, rt.storage);
  const audit = await purgeAuditLog(ownerPool, rt.config.AUDIT_RETENTION_DAYS, now).catch((err: Error & { code?: string }) => {
    if (err.code !== '42501') throw err;
    rt.logger.warn('audit log not purged: the worker needs MIGRATION_DATABASE_URL (the schema owner)');
    return null;
  });
  // fold the GPS change log of hours older than the crime trail cache reaches (crime/trail-cache.ts)
  const gpsHourLog = await compactGpsHourLog(rt.pool, now.getTime() - rt.config.RETENTION_DAYS * 86_400_000, now.getTime() - (rt.config.CRIME_TRAIL_CACHE_HOURS + 4) * 3_600_000);
  rt.logger.info({ deleted, audit, gpsHourLog, days: rt.config.RETENTION_DAYS, audit_days: rt.config.AUDIT_RETENTION_DAYS }, 'retention: expired rows deleted');
  return { mode: rt.storage, deleted, audit };
}

/** Alert email (alerts/email.ts), when SMTP_URL is set: the dispatcher, the queue and its worker. */
function startEmail(rt: Runtime) {
  const smtpUrl = rt.config.SMTP_URL;
  if (!smtpUrl) return null;
  const prefix = rt.config.QUEUE_PREFIX;
  const settings = { smtpUrl, from: rt.config.EMAIL_FROM, consoleUrl: rt.config.CONSOLE_URL };
  const transport = createTransport(smtpUrl);
  const queue = new Queue<EmailJob>(EMAIL_QUEUE, { connection: rt.redis, prefix });
  const worker = createEmailWorker(rt.pool, transport, settings, rt.redisConnection(), prefix, rt.logger, rt.metrics);
  logRedisErrors(rt, 'email', queue, worker);
  const state = createOutboxState();
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

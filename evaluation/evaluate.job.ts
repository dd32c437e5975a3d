import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { restoreDirty, takeDirty, type DeviceReadingsJob } from '../signals/queues.js';
import { STREAMS } from '../signals/streams.js';
import { evaluateDeviceBatch, type EvaluationDeps } from './device-batch.js';

/**
 * One `device-readings` job: takes the devices' marks, evaluates them as a batch, and when some
 * devices fail puts their marks back and throws, so BullMQ retries the job for those alone.
 */
export async function runEvaluationJob(deps: EvaluationDeps, redis: Redis, prefix: string, job: Job<DeviceReadingsJob>) {
  const devices = [...new Set(job.data.devices)].sort();
  const marks = await takeDirty(redis, prefix, devices, STREAMS);
  // a job started before may have taken marks and died: evaluate after the watermarks anyway
  const sweep = job.data.sweep === true || job.attemptsStarted > 1;
  const r = await evaluateDeviceBatch(deps, devices, marks, sweep, Date.now());
  if (r.failed.size) {
    const failed = [...r.failed.keys()];
    await restoreDirty(redis, prefix, new Map(failed.map((d) => [d, marks.get(d) ?? {}])));
    await job.updateData({ ...job.data, devices: failed }); // the retry is for these alone
    const [first, err] = [...r.failed][0]!;
    throw new Error(`${failed.length} of ${devices.length} devices failed (${first}: ${err.message})`);
  }
  return { devices: devices.length, fixes: r.fixes, alerts: r.alerts };
}

import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Stream } from './streams.js';

/**
 * Queue of "these devices have new readings": each job carries a batch of device ids, evaluated
 * together (set-based queries, few transactions). A device is in at most one job that has not
 * yet taken its marks (see `signalDevices`).
 */
export const DEVICE_READINGS_QUEUE = 'device-readings';

/** Most devices in one evaluation job: a batch is one geofence and one health transaction. */
export const DEVICE_BATCH_MAX = 200;

export interface DeviceReadingsJob {
  devices: string[];
  /** evaluate every device after its watermarks even without a mark (the worker does so on a retry) */
  sweep?: boolean;
}

const JOB_OPTS = { removeOnComplete: true, removeOnFail: 1000, attempts: 10, backoff: { type: 'exponential', delay: 500 } } as const;

function batchJobs(devices: string[]) {
  const jobs = [];
  for (let i = 0; i < devices.length; i += DEVICE_BATCH_MAX) jobs.push({ name: 'evaluate', data: { devices: devices.slice(i, i + DEVICE_BATCH_MAX) }, opts: JOB_OPTS });
  return jobs;
}

export function createDeviceReadingsQueue(connection: Redis, prefix: string): Queue<DeviceReadingsJob> {
  return new Queue<DeviceReadingsJob>(DEVICE_READINGS_QUEUE, { connection, prefix });
}

/** Devices with new readings: per device, the earliest device time (epoch ms) of each stream. */
export type DirtyDevices = Map<string, Partial<Record<Stream, number>>>;

export function markDirty(dirty: DirtyDevices, deviceId: string, stream: Stream, tsMs: number): void {
  let d = dirty.get(deviceId);
  if (!d) dirty.set(deviceId, (d = {}));
  const cur = d[stream];
  if (cur === undefined || tsMs < cur) d[stream] = tsMs;
}

const dirtyKey = (prefix: string) => `${prefix}:device-dirty`;

/**
 * Keeps, per (device, stream), the earliest device time not yet taken by an evaluation, in a
 * Redis hash: an evaluation whose readings are older than its watermark knows it has late data.
 */
const LOWER_MIN = `
local fresh = {}
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur then
    fresh[#fresh + 1] = ARGV[i]
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  elseif tonumber(ARGV[i + 1]) < tonumber(cur) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return fresh`;
const TAKE = `
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('HGET', KEYS[1], ARGV[i]) or false
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return out`;

/**
 * Signals devices with newly committed readings: records the earliest new device time per
 * stream, and adds jobs (batches of at most `DEVICE_BATCH_MAX` devices) only for devices that
 * had no mark yet. A device with a mark already is in a job that has not taken its marks: that
 * job will see these readings too, since they are committed before the mark is recorded. The
 * worker takes the marks when it starts a job, so readings committed during an evaluation
 * leave a new mark and get a new job.
 */
export async function signalDevices(queue: Queue<DeviceReadingsJob>, redis: Redis, prefix: string, dirty: DirtyDevices, force = false): Promise<void> {
  if (dirty.size === 0) return;
  const args: string[] = [];
  for (const [deviceId, streams] of dirty) for (const [stream, ts] of Object.entries(streams)) args.push(`${deviceId}|${stream}`, String(ts));
  const fresh = (await redis.eval(LOWER_MIN, 1, dirtyKey(prefix), ...args)) as string[];
  // `force` (a retry): the marks may have been set by the attempt whose job was not added
  // (Redis lost between the two calls, as in a failover); a job for every device then, an
  // extra one finding no marks does nothing
  const devices = force ? [...dirty.keys()] : [...new Set(fresh.map((f) => f.slice(0, f.lastIndexOf('|'))))];
  if (devices.length === 0) return;
  await queue.addBulk(batchJobs(devices));
}

/**
 * Takes (reads and clears) the earliest new device time of each stream of each device, in one
 * round trip; a device without marks maps to `{}`.
 */
export async function takeDirty(redis: Redis, prefix: string, devices: readonly string[], streams: readonly Stream[]): Promise<Map<string, Partial<Record<Stream, number>>>> {
  const fields = devices.flatMap((d) => streams.map((s) => `${d}|${s}`));
  const vals = fields.length ? ((await redis.eval(TAKE, 1, dirtyKey(prefix), ...fields)) as Array<string | null>) : [];
  const out = new Map<string, Partial<Record<Stream, number>>>();
  devices.forEach((d, i) => {
    const marks: Partial<Record<Stream, number>> = {};
    streams.forEach((s, j) => {
      const v = vals[i * streams.length + j];
      if (v) marks[s] = Number(v);
    });
    out.set(d, marks);
  });
  return out;
}

/**
 * Adds jobs for every device with a mark: a device whose job failed for good keeps its marks
 * and would otherwise never be signalled again. A device whose job is still waiting is in two
 * jobs; whichever starts first takes the marks, the other finds none and does nothing.
 */
export async function sweepDirty(queue: Queue<DeviceReadingsJob>, redis: Redis, prefix: string): Promise<number> {
  const fields = await redis.hkeys(dirtyKey(prefix));
  const devices = [...new Set(fields.map((f) => f.slice(0, f.lastIndexOf('|'))))].sort();
  if (devices.length) await queue.addBulk(batchJobs(devices));
  return devices.length;
}

/** Puts back what `takeDirty` took, when an evaluation fails and will be retried. */
export async function restoreDirty(redis: Redis, prefix: string, dirty: DirtyDevices): Promise<void> {
  const args: string[] = [];
  for (const [deviceId, streams] of dirty) for (const [stream, ts] of Object.entries(streams)) args.push(`${deviceId}|${stream}`, String(ts));
  if (args.length) await redis.eval(LOWER_MIN, 1, dirtyKey(prefix), ...args);
}

/**
 * Coalesces signals from many commits into few round trips, and keeps retrying while Redis is
 * unreachable (the readings are already committed; the signal must still go out).
 */
export function createSignaler(queue: Queue<DeviceReadingsJob>, redis: Redis, prefix: string, onError: (err: Error) => void, lingerMs = 10) {
  let pending: DirtyDevices = new Map();
  /** pending holds devices of a failed attempt: the retry adds their jobs whatever the marks say */
  let retrying = false;
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  let closed = false;

  function schedule(delay: number): void {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, delay);
  }

  function merge(into: DirtyDevices, from: DirtyDevices): void {
    for (const [d, streams] of from) for (const [s, ts] of Object.entries(streams)) markDirty(into, d, s as Stream, ts);
  }

  async function flush(): Promise<void> {
    if (inFlight) return inFlight.then(() => (pending.size ? flush() : undefined));
    if (pending.size === 0) return;
    const batch = pending;
    const force = retrying;
    pending = new Map();
    retrying = false;
    inFlight = signalDevices(queue, redis, prefix, batch, force)
      .catch((err: Error) => {
        merge(pending, batch);
        retrying = true;
        onError(err);
        schedule(1000);
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  }

  return {
    signal(dirty: DirtyDevices): void {
      merge(pending, dirty);
      schedule(lingerMs);
    },
    /** sends what is pending (used at shutdown and by tests) */
    flush,
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}

import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

/** Queue of "this device has new readings": one pending job per device at most (deduplicated on its id). */
export const DEVICE_READINGS_QUEUE = 'device-readings';

export interface DeviceReadingsJob {
  deviceId: string;
}

export function createRedis(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest null on connections used by workers and blocking calls.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
}

export function createDeviceReadingsQueue(connection: Redis, prefix: string): Queue<DeviceReadingsJob> {
  return new Queue<DeviceReadingsJob>(DEVICE_READINGS_QUEUE, { connection, prefix });
}

/**
 * Signals devices with newly committed readings. The deduplication id is the device id, so a
 * device has at most one waiting job; the evaluating worker removes the key when it starts
 * (`job.removeDeduplicationKey()`), so readings committed during an evaluation get a new job.
 */
export async function signalDevices(queue: Queue<DeviceReadingsJob>, deviceIds: Iterable<string>): Promise<void> {
  const jobs = [...new Set(deviceIds)].map((deviceId) => ({
    name: 'evaluate',
    data: { deviceId },
    opts: {
      deduplication: { id: deviceId },
      removeOnComplete: true,
      removeOnFail: 1000,
      attempts: 10,
      backoff: { type: 'exponential', delay: 500 },
    },
  }));
  if (jobs.length) await queue.addBulk(jobs);
}

/**
 * Coalesces "device has new readings" signals from many commits into few `addBulk` calls, and
 * keeps retrying while Redis is unreachable (the readings are already committed; the signal
 * must still go out).
 */
export function createSignaler(queue: Queue<DeviceReadingsJob>, onError: (err: Error) => void, lingerMs = 10) {
  const pending = new Set<string>();
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

  async function flush(): Promise<void> {
    if (inFlight) return inFlight.then(() => (pending.size ? flush() : undefined));
    if (pending.size === 0) return;
    const batch = [...pending];
    pending.clear();
    inFlight = signalDevices(queue, batch)
      .catch((err: Error) => {
        for (const d of batch) pending.add(d);
        onError(err);
        schedule(1000);
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  }

  return {
    signal(deviceIds: Iterable<string>): void {
      for (const d of deviceIds) pending.add(d);
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

import { Redis } from 'ioredis';

export function createRedis(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest null on connections used by workers and blocking calls.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
}

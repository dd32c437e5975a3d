import type { Queue } from 'bullmq';
import { logRedisErrors, type Part, type Runtime } from '../platform/runtime.js';
import { createDeviceReadingsQueue, createSignaler, type DeviceReadingsJob } from '../signals/queues.js';
import { createBatcher } from '../ingest/batcher.js';
import { createIngestConsumer } from '../ingest/consumer.js';
import { readBrokerCa } from '../registry/ca.js';
import { brokerUrls } from '../platform/config.js';

/** Ingest: MQTT consumer → batched idempotent writes → device signals on BullMQ. */
export async function startIngest(rt: Runtime): Promise<Part & { queue: Queue<DeviceReadingsJob> }> {
  const queue = createDeviceReadingsQueue(rt.redis, rt.config.QUEUE_PREFIX);
  logRedisErrors(rt, 'device-readings', queue);
  const signaler = createSignaler(queue, rt.redis, rt.config.QUEUE_PREFIX, (err) => rt.logger.warn({ err: err.message }, 'device signal failed; retrying'));
  const batcher = createBatcher({
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    maxBatch: rt.config.INGEST_MAX_BATCH,
    slots: rt.config.INGEST_DB_SLOTS,
    onCommitted: (dirty) => signaler.signal(dirty),
  });
  const consumer = createIngestConsumer({
    urls: brokerUrls(rt.config.MQTT_URL),
    ca: readBrokerCa(rt.config.MQTT_CA_FILE),
    username: rt.config.MQTT_USERNAME,
    password: rt.config.MQTT_PASSWORD,
    connections: rt.config.INGEST_CONNECTIONS,
    inflight: rt.config.INGEST_INFLIGHT,
    maxPending: rt.config.INGEST_MAX_PENDING,
    maxPendingBytes: rt.config.INGEST_MAX_PENDING_BYTES,
    instance: rt.config.INGEST_INSTANCE,
    shareGroup: rt.config.MQTT_SHARE_GROUP,
    subscription: rt.config.INGEST_SUBSCRIPTION,
    retentionDays: rt.config.RETENTION_DAYS,
    batcher,
    logger: rt.logger,
    metrics: rt.metrics,
  });
  await consumer.start();
  return {
    name: 'ingest',
    queue,
    checks: { mqtt: () => consumer.connected },
    async stop() {
      // Take no more, let what was taken commit (and be acknowledged), then close the sessions:
      // anything still unacknowledged is redelivered by the broker to the next session.
      consumer.pause();
      await Promise.race([batcher.idle(), new Promise((r) => setTimeout(r, 5000))]);
      batcher.stop();
      await consumer.stop();
      await signaler.flush().catch(() => undefined);
      signaler.close();
      await queue.close();
    },
  };
}


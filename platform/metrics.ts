import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one process (contract §6 names). Create once per process. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tagwatch_process_' });
  return {
    registry,
    readingsStored: new Counter({
      name: 'tagwatch_readings_stored_total',
      help: 'Readings stored, by stream',
      labelNames: ['stream'] as const,
      registers: [registry],
    }),
    readingsRejected: new Counter({
      name: 'tagwatch_readings_rejected_total',
      help: 'Telemetry messages or batch items rejected, by reason code',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    readingsDuplicate: new Counter({
      name: 'tagwatch_readings_duplicate_total',
      help: 'Readings received again (QoS 1 redelivery, resent batch) and not stored twice',
      registers: [registry],
    }),
    alertsRaised: new Counter({
      name: 'tagwatch_alerts_raised_total',
      help: 'Alerts raised, by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    alertLatency: new Histogram({
      name: 'tagwatch_alert_latency_seconds',
      help: 'From the publish (receipt) of the reading that proved a breach to the alert being raised',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    deliveryAttempts: new Counter({
      name: 'tagwatch_alert_delivery_attempts_total',
      help: 'Alert delivery attempts by channel (webhook, email) and outcome (delivered, retry, failed: given up after 24 hours)',
      labelNames: ['channel', 'outcome'] as const,
      registers: [registry],
    }),
    deliveryAttemptSeconds: new Histogram({
      name: 'tagwatch_alert_delivery_attempt_seconds',
      help: 'Duration of one alert delivery attempt, by channel',
      labelNames: ['channel'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15],
      registers: [registry],
    }),
    ingestBatchSize: new Histogram({
      name: 'tagwatch_ingest_batch_readings',
      help: 'Readings per database write',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000],
      registers: [registry],
    }),
    ingestCommitSeconds: new Histogram({
      name: 'tagwatch_ingest_commit_seconds',
      help: 'Duration of one ingest write (readings and rejections)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    sseStreams: new Gauge({
      name: 'tagwatch_sse_streams',
      help: 'Live alert streams open in this process',
      registers: [registry],
    }),
    sseRefused: new Counter({
      name: 'tagwatch_sse_refused_total',
      help: 'Live alert streams refused (429), by limit: per_user or total',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    sseClosed: new Counter({
      name: 'tagwatch_sse_closed_total',
      help: 'Live alert streams closed by the server, by reason: slow_client (its buffer passed SSE_MAX_BUFFER_BYTES), token_expired, shutdown',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ingestMessages: new Counter({
      name: 'tagwatch_ingest_messages_total',
      help: 'MQTT telemetry messages this ingest process took from the broker (a redelivery counts again)',
      registers: [registry],
    }),
    evaluationJobs: new Counter({
      name: 'tagwatch_evaluation_jobs_total',
      help: 'Evaluation jobs (device-readings queue) this worker process completed',
      registers: [registry],
    }),
    evaluationDevices: new Counter({
      name: 'tagwatch_evaluation_devices_total',
      help: 'Devices evaluated by the evaluation jobs this worker process completed',
      registers: [registry],
    }),
    evaluationFixes: new Counter({
      name: 'tagwatch_evaluation_fixes_total',
      help: 'GPS fixes read by the evaluation jobs this worker process completed',
      registers: [registry],
    }),
    ingestDbErrors: new Counter({
      name: 'tagwatch_ingest_db_errors_total',
      help: 'Failed ingest writes (retried with backoff; the messages stay unacknowledged)',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

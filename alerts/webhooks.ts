import { createHmac } from 'node:crypto';
import net from 'node:net';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../platform/config.js';
import type { Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { visibleTo, type FeedEvent } from './feed.js';
import { createOutboxState, dispatchOutbox, type Outbox, type OutboxState } from './outbox.js';
import { createGate, DEFAULT_GATE, type Gate, type GateSettings } from './webhook-gate.js';
import { addressProblem, hostOf, systemResolver, type Resolver } from './webhook-address.js';
import { createPoster } from './webhook-http.js';
import { decryptSecret, parseSecretsKey } from './secrets.js';
import { createAttemptLog, createBatchLoader, createBodyCache, eventBody, giveUp, loadDeliveries } from './webhook-store.js';

/**
 * Webhook delivery (contract §5): JSON body, `X-Tagwatch-Signature: sha256=<hex HMAC-SHA256 of
 * the body with the webhook secret>`, retried with exponential backoff for 24 hours, every
 * attempt logged. Each (webhook, feed event) is a row in webhook_deliveries before it is a
 * BullMQ job, so a Redis restart loses nothing: pending rows are enqueued again (the job id is
 * the delivery id, so enqueueing twice is harmless). `X-Tagwatch-Delivery` (the feed event id)
 * lets a receiver drop a repeat.
 *
 * Isolation: a worker slot is only ever spent on an HTTP attempt. Per webhook at most
 * `perReceiver` attempts run at once and a circuit breaker stops attempts to a webhook that
 * keeps failing (webhook-gate.ts); a delivery that may not go now is moved back to the delayed
 * set at once (not an attempt: nothing sent or logged). Retries are delayed jobs too, with the
 * backoff computed from the attempts logged in the database.
 */

export const WEBHOOK_QUEUE = 'webhooks';
export const RETRY_FOR_MS = 24 * 3600_000;
export const ATTEMPT_TIMEOUT_MS = 5000;

export interface DeliverySettings {
  /** attempts in flight per worker process */
  concurrency: number;
  /** attempts in flight per webhook (per worker process) */
  perReceiver: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  /** consecutive failures that open a webhook's circuit breaker */
  breakerFailures: number;
  /** connect to private/reserved addresses too (WEBHOOK_ALLOW_PRIVATE: tests, closed networks) */
  allowPrivate: boolean;
  /** host name resolver for every connection (tests inject one; default: the system's) */
  resolve?: Resolver;
  /** SECRETS_KEY: opens the webhook secrets (null: no webhook can be signed) */
  secretsKey: Buffer | null;
}

export function deliverySettings(
  c: Pick<Config, 'WEBHOOK_CONCURRENCY' | 'WEBHOOK_RECEIVER_CONCURRENCY' | 'WEBHOOK_CONNECT_TIMEOUT_MS' | 'WEBHOOK_TIMEOUT_MS' | 'WEBHOOK_BREAKER_FAILURES' | 'WEBHOOK_ALLOW_PRIVATE' | 'SECRETS_KEY'>,
): DeliverySettings {
  return {
    concurrency: c.WEBHOOK_CONCURRENCY,
    perReceiver: c.WEBHOOK_RECEIVER_CONCURRENCY,
    connectTimeoutMs: c.WEBHOOK_CONNECT_TIMEOUT_MS,
    timeoutMs: c.WEBHOOK_TIMEOUT_MS,
    breakerFailures: c.WEBHOOK_BREAKER_FAILURES,
    allowPrivate: c.WEBHOOK_ALLOW_PRIVATE,
    secretsKey: c.SECRETS_KEY ? parseSecretsKey(c.SECRETS_KEY) : null,
  };
}

export const DEFAULT_DELIVERY: DeliverySettings = {
  concurrency: 200,
  perReceiver: 4,
  connectTimeoutMs: 2000,
  timeoutMs: ATTEMPT_TIMEOUT_MS,
  breakerFailures: 5,
  allowPrivate: false,
  secretsKey: null,
};

export function sign(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Backoff before attempt n+1: 1 s doubling, at most 1 h (about 36 attempts in 24 h). */
export function backoffMs(attemptsMade: number): number {
  return Math.min(3600_000, 1000 * 2 ** Math.max(0, attemptsMade - 1));
}

/**
 * Why a webhook URL is refused, or null: http(s) only, no credentials, and only public addresses
 * (alerts/webhook-address.ts) unless allowed. The same check runs again on every connection of
 * every delivery attempt, since a name can resolve differently later.
 */
export async function urlProblem(raw: string, allowPrivate: boolean, resolve: Resolver = systemResolver): Promise<string | null> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'url is not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `url must be http or https, not ${u.protocol.replace(':', '')}`;
  if (u.username || u.password) return 'url must not carry credentials';
  if (allowPrivate) return null;
  const host = hostOf(u);
  let addresses: string[];
  try {
    addresses = net.isIP(host) ? [host] : await resolve(host);
  } catch {
    return `url host ${host} does not resolve`;
  }
  if (addresses.length === 0) return `url host ${host} does not resolve`;
  for (const a of addresses) {
    const why = addressProblem(a);
    if (why) return `url points at a ${why}`;
  }
  return null;
}

export interface DeliveryJob {
  deliveryId: string;
  /** lets the worker apply the webhook's lane and breaker before reading anything (absent on jobs from older versions) */
  webhookId?: string;
}

/** What the dispatcher can tell a delivery worker in the same process. */
export interface DispatchHooks {
  /** the bodies of the events just read, so the first attempts need no query */
  prime(events: FeedEvent[]): void;
  /** when the webhook's breaker is open, the end of its cooldown: new deliveries wait until then in the queue */
  openUntil(webhookId: string, now: number): number | null;
}



/**
 * Turns new feed events (and late ones that filled a gap) into delivery rows and jobs for the
 * webhooks that may see them. The cursor and the rows move in one transaction. Returns how
 * many feed events it took.
 */
export async function dispatchFeed(pool: Pool, queue: Queue<DeliveryJob>, hooks?: DispatchHooks, state: OutboxState = createOutboxState()): Promise<number> {
  const outbox: Outbox<{ id: string; webhook_id: string }> = {
    cursorTable: 'delivery_cursor',
    async plan(tx, events) {
      const webhooks = await tx.query<{ id: string; owner_id: string; owner_role: string }>(`SELECT id, owner_id, owner_role FROM webhooks WHERE active AND expires_at > now()`);
      const rows: Array<{ webhook_id: string; event_id: string }> = [];
      for (const e of events) for (const h of webhooks.rows) if (visibleTo(e, h.owner_role, h.owner_id)) rows.push({ webhook_id: h.id, event_id: e.id });
      if (!rows.length) return [];
      const ins = await tx.query<{ id: string; webhook_id: string }>(
        `INSERT INTO webhook_deliveries (webhook_id, event_id)
         SELECT r.webhook_id::uuid, r.event_id::bigint FROM jsonb_to_recordset($1::jsonb) AS r(webhook_id text, event_id text)
         ON CONFLICT DO NOTHING RETURNING id::text, webhook_id::text`,
        [JSON.stringify(rows)],
      );
      return ins.rows;
    },
    async enqueue(created, events) {
      hooks?.prime(events);
      await enqueue(queue, created, hooks);
    },
  };
  return dispatchOutbox(pool, outbox, state, Date.now());
}

export async function enqueue(queue: Queue<DeliveryJob>, deliveries: Array<{ id: string; webhook_id: string }>, hooks?: Pick<DispatchHooks, 'openUntil'>): Promise<void> {
  const now = Date.now();
  for (let i = 0; i < deliveries.length; i += 5000) {
    await queue.addBulk(
      deliveries.slice(i, i + 5000).map((d) => {
        const until = hooks?.openUntil(d.webhook_id, now) ?? null;
        return {
          name: 'deliver',
          data: { deliveryId: d.id, webhookId: d.webhook_id },
          // attempts/backoff here only cover the worker's own failures (database down); delivery
          // retries are scheduled by the worker itself
          opts: { jobId: `d${d.id}`, attempts: 20, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: true, ...(until ? { delay: until - now } : {}) },
        };
      }),
    );
  }
}

/**
 * Enqueues every pending delivery of an active webhook that has no job (after a Redis restart,
 * a crash between commit and enqueue, or a job that failed for good on a worker error).
 * Returns how many.
 */
export async function requeuePending(pool: Pool, queue: Queue<DeliveryJob>): Promise<number> {
  const redis = (await queue.client) as unknown as Redis; // an ioredis connection: BullMQ is given ioredis ones here
  let after = '0';
  let missing = 0;
  for (;;) {
    const r = await pool.query<{ id: string; webhook_id: string }>(
      `SELECT d.id::text, d.webhook_id::text FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.status = 'pending' AND w.active AND w.expires_at > now() AND d.id > $1 ORDER BY d.id LIMIT 5000`,
      [after],
    );
    if (r.rows.length === 0) return missing;
    after = r.rows[r.rows.length - 1]!.id;
    const pipe = redis.pipeline();
    for (const d of r.rows) pipe.exists(queue.toKey(`d${d.id}`));
    const exists = (await pipe.exec()) ?? [];
    const lost = r.rows.filter((_, i) => exists[i]?.[1] !== 1);
    await enqueue(queue, lost);
    missing += lost.length;
  }
}

export function backoffAfter(attemptsMade: number, now: number): number {
  return now + backoffMs(attemptsMade);
}

/**
 * The delivery worker: per job, admission by the webhook's lane and breaker, one signed POST,
 * the attempt logged (group commit) and, on failure, the job delayed by its backoff. Returns
 * the worker, the gate (for the dispatcher in the same process) and the hooks to prime it.
 */
export function createWebhookWorker(
  pool: Pool,
  connection: Redis,
  prefix: string,
  logger: Logger,
  settings: DeliverySettings = DEFAULT_DELIVERY,
  gateOverrides: Partial<GateSettings> = {},
  metrics?: Metrics,
) {
  const gate: Gate = createGate({ ...DEFAULT_GATE, perReceiver: settings.perReceiver, breakerFailures: settings.breakerFailures, probeMs: settings.timeoutMs, ...gateOverrides });
  const rows = createBatchLoader((ids) => loadDeliveries(pool, ids));
  const bodies = createBodyCache(pool);
  const log = createAttemptLog(pool);
  const limits = { connectTimeoutMs: settings.connectTimeoutMs, timeoutMs: settings.timeoutMs };
  const poster = createPoster({ allowPrivate: settings.allowPrivate, ...(settings.resolve ? { resolve: settings.resolve } : {}) });
  const secretOf = (row: { webhookId: string; secretEnc: string }) => {
    if (!settings.secretsKey) throw new Error('SECRETS_KEY is not set: webhook secrets cannot be opened');
    return decryptSecret(settings.secretsKey, row.webhookId, row.secretEnc);
  };

  const defer = async (job: Job<DeliveryJob>, token: string | undefined, at: number): Promise<never> => {
    await job.moveToDelayed(at, token);
    throw new DelayedError();
  };

  async function deliver(job: Job<DeliveryJob>, token?: string): Promise<string> {
    let row = job.data.webhookId ? null : await rows(job.data.deliveryId);
    const webhookId = job.data.webhookId ?? row?.webhookId;
    if (!webhookId) return 'gone';
    const admission = gate.admit(webhookId, Date.now());
    if (!admission.go) {
      // a webhook down for the whole 24 hours: its breaker is what keeps the delivery from a
      // last attempt, so it is given up here (job.timestamp is when it was enqueued: the row is
      // at least that old)
      if (admission.reason !== 'busy' && Date.now() - job.timestamp >= RETRY_FOR_MS) {
        await giveUp(pool, job.data.deliveryId);
        logger.warn({ delivery: job.data.deliveryId, webhook: webhookId }, 'webhook delivery given up after 24 hours (receiver still down)');
        return 'failed';
      }
      return defer(job, token, admission.retryAt);
    }
    let sent: boolean | null = null;
    try {
      row ??= await rows(job.data.deliveryId);
      if (!row || row.status !== 'pending') return 'gone';
      if (!row.active) {
        await giveUp(pool, row.id); // deleted, revoked or expired: nothing more is sent for it
        return 'gone';
      }
      const event = await bodies.get(row.eventId, Date.now());
      if (!event) return 'gone';
      const startedMs = Date.now();
      const r = await poster.post(
        row.url,
        { 'content-type': 'application/json', 'x-tagwatch-signature': sign(event.body, secretOf(row)), 'x-tagwatch-delivery': row.eventId, 'x-tagwatch-event': event.action },
        event.body,
        limits,
      );
      const endedMs = Date.now();
      sent = r.error === null;
      gate.done(webhookId, admission.probe, sent, endedMs);
      const expired = !sent && endedMs - row.createdMs >= RETRY_FOR_MS;
      await log.record({ deliveryId: row.id, startedMs, endedMs, statusCode: r.status, error: r.error, outcome: sent ? 'delivered' : expired ? 'failed' : 'pending', bodySent: r.sent });
      metrics?.deliveryAttempts.inc({ channel: 'webhook', outcome: sent ? 'delivered' : expired ? 'failed' : 'retry' });
      metrics?.deliveryAttemptSeconds.observe({ channel: 'webhook' }, (endedMs - startedMs) / 1000);
      if (sent) return 'delivered';
      if (expired) {
        logger.warn({ delivery: row.id, webhook: webhookId, err: r.error }, 'webhook delivery given up after 24 hours');
        return 'failed';
      }
      return defer(job, token, backoffAfter(row.attempts + 1, endedMs));
    } finally {
      if (sent === null) gate.done(webhookId, admission.probe, null, Date.now());
    }
  }

  const worker = new Worker<DeliveryJob>(WEBHOOK_QUEUE, deliver, { connection, prefix, concurrency: settings.concurrency });
  worker.on('failed', (job, err) => logger.warn({ delivery: job?.data.deliveryId, err: err.message }, 'webhook delivery job failed; retried'));
  const hooks: DispatchHooks = {
    prime(events) {
      const now = Date.now();
      for (const e of events) bodies.put(e.id, eventBody(e), now);
    },
    openUntil: (id, now) => gate.openUntil(id, now),
  };
  return {
    worker,
    gate,
    hooks,
    close: async () => {
      await worker.close();
      poster.close();
    },
  };
}

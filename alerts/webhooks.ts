import { createHmac } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '../src/db.js';
import type { Logger } from '../src/logger.js';
import { feedAfter, visibleTo } from './feed.js';

/**
 * Webhook delivery (contract §5): JSON body, `X-Tagwatch-Signature: sha256=<hex HMAC-SHA256 of
 * the body with the webhook secret>`, retried with exponential backoff for 24 hours, every
 * attempt logged. Each (webhook, feed event) is a row in webhook_deliveries before it is a
 * BullMQ job, so a Redis restart loses nothing: pending rows are enqueued again (the job id is
 * the delivery id, so enqueueing twice is harmless). `X-Tagwatch-Delivery` (the feed event id)
 * lets a receiver drop a repeat.
 */

export const WEBHOOK_QUEUE = 'webhooks';
export const RETRY_FOR_MS = 24 * 3600_000;
export const ATTEMPT_TIMEOUT_MS = 5000;

export function sign(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Backoff before attempt n+1: 1 s doubling, at most 1 h (about 36 attempts in 24 h). */
export function backoffMs(attemptsMade: number): number {
  return Math.min(3600_000, 1000 * 2 ** Math.max(0, attemptsMade - 1));
}

function isPrivate(ip: string): boolean {
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 10 || a === 127 || a === 0 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
  }
  const v = ip.toLowerCase();
  if (v.startsWith('::ffff:')) return isPrivate(v.slice(7));
  return v === '::1' || v === '::' || v.startsWith('fc') || v.startsWith('fd') || v.startsWith('fe80');
}

/** Why a webhook URL is refused, or null: http(s) only, and public addresses only unless allowed. */
export async function urlProblem(raw: string, allowPrivate: boolean): Promise<string | null> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'url is not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `url must be http or https, not ${u.protocol.replace(':', '')}`;
  if (u.username || u.password) return 'url must not carry credentials';
  if (allowPrivate) return null;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch {
    return `url host ${host} does not resolve`;
  }
  const bad = addresses.find(isPrivate);
  return bad ? `url points at a non-public address (${bad}); set WEBHOOK_ALLOW_PRIVATE to allow it` : null;
}

export interface DeliveryJob {
  deliveryId: string;
}

/**
 * Turns new feed events into delivery rows (and jobs) for the webhooks that may see them.
 * The cursor and the rows move in one transaction. Returns how many feed events it took.
 */
export async function dispatchFeed(pool: Pool, queue: Queue<DeliveryJob>): Promise<number> {
  const client = await pool.connect();
  let created: string[] = [];
  let processed = 0;
  try {
    await client.query('BEGIN');
    const cur = await client.query<{ event_id: string }>(`SELECT event_id::text FROM delivery_cursor FOR UPDATE`);
    const events = await feedAfter(client, cur.rows[0]!.event_id, 500, null);
    if (events.length === 0) {
      await client.query('COMMIT');
      return 0;
    }
    const hooks = await client.query<{ id: string; owner_id: string; owner_role: string }>(`SELECT id, owner_id, owner_role FROM webhooks WHERE active`);
    const rows: Array<{ webhook_id: string; event_id: string }> = [];
    for (const e of events) for (const h of hooks.rows) if (visibleTo(e, h.owner_role, h.owner_id)) rows.push({ webhook_id: h.id, event_id: e.id });
    if (rows.length) {
      const ins = await client.query<{ id: string }>(
        `INSERT INTO webhook_deliveries (webhook_id, event_id)
         SELECT r.webhook_id::uuid, r.event_id::bigint FROM jsonb_to_recordset($1::jsonb) AS r(webhook_id text, event_id text)
         ON CONFLICT DO NOTHING RETURNING id::text`,
        [JSON.stringify(rows)],
      );
      created = ins.rows.map((r) => r.id);
    }
    await client.query(`UPDATE delivery_cursor SET event_id = $1`, [events[events.length - 1]!.id]);
    processed = events.length;
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
  await enqueue(queue, created);
  return processed;
}

export async function enqueue(queue: Queue<DeliveryJob>, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await queue.addBulk(
    ids.map((deliveryId) => ({
      name: 'deliver',
      data: { deliveryId },
      opts: { jobId: `d${deliveryId}`, attempts: 1000, backoff: { type: 'custom' }, removeOnComplete: true, removeOnFail: true },
    })),
  );
}

/** Enqueues every pending delivery again (after a Redis restart, or a crash between commit and enqueue). */
export async function requeuePending(pool: Pool, queue: Queue<DeliveryJob>): Promise<number> {
  const r = await pool.query<{ id: string }>(`SELECT id::text FROM webhook_deliveries WHERE status = 'pending' ORDER BY id LIMIT 10000`);
  const waiting = new Set((await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized'])).map((j) => j.id));
  const missing = r.rows.map((x) => x.id).filter((id) => !waiting.has(`d${id}`));
  await enqueue(queue, missing);
  return missing.length;
}

/** One delivery attempt; logs it; throws to be retried. */
export async function attemptDelivery(pool: Pool, deliveryId: string, now: number): Promise<'delivered' | 'gone'> {
  const d = await pool.query<{ status: string; created_at: Date; url: string; secret: string; event_id: string; active: boolean }>(
    `SELECT d.status, d.created_at, w.url, w.secret, d.event_id::text, w.active FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1`,
    [deliveryId],
  );
  const row = d.rows[0];
  if (!row || row.status !== 'pending' || !row.active) return 'gone';
  const [event] = await feedAfter(pool, String(BigInt(row.event_id) - 1n), 1, null);
  if (!event || event.id !== row.event_id) return 'gone';
  const { manager_ids: _m, audience: _a, ...payload } = event;
  const body = JSON.stringify({ delivery_id: event.id, event: event.action, ...payload });
  const t0 = Date.now();
  let status: number | null = null;
  let error: string | null = null;
  try {
    const res = await fetch(row.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tagwatch-signature': sign(body, row.secret), 'x-tagwatch-delivery': event.id, 'x-tagwatch-event': event.action },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
    });
    status = res.status;
    await res.body?.cancel().catch(() => undefined);
    if (status < 200 || status >= 300) error = `HTTP ${status}`;
  } catch (err) {
    error = (err as Error).name === 'TimeoutError' ? `timed out after ${ATTEMPT_TIMEOUT_MS} ms` : (err as Error).message;
  }
  const ok = error === null;
  await pool.query(`INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms) VALUES ($1, $2, $3, $4)`, [deliveryId, status, error, Date.now() - t0]);
  const expired = !ok && now - row.created_at.getTime() >= RETRY_FOR_MS;
  await pool.query(
    `UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2, status = $3, delivered_at = CASE WHEN $3 = 'delivered' THEN now() END WHERE id = $1`,
    [deliveryId, error, ok ? 'delivered' : expired ? 'failed' : 'pending'],
  );
  if (ok) return 'delivered';
  if (expired) throw new UnrecoverableError(`gave up after 24 hours: ${error}`);
  throw new Error(error!);
}

export function createWebhookWorker(pool: Pool, connection: Redis, prefix: string, logger: Logger, concurrency = 50) {
  return new Worker<DeliveryJob>(WEBHOOK_QUEUE, async (job) => attemptDelivery(pool, job.data.deliveryId, Date.now()), {
    connection,
    prefix,
    concurrency,
    settings: { backoffStrategy: (attemptsMade: number) => backoffMs(attemptsMade) },
  }).on('failed', (job, err) => logger.debug({ delivery: job?.data.deliveryId, err: err.message }, 'webhook attempt failed'));
}

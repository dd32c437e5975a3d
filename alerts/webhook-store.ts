import type { Pool, Queryable } from '../platform/db.js';
import { ALERT_COLS } from './lifecycle.repo.js';
import type { FeedEvent } from './feed.js';

/**
 * The database side of webhook delivery, batched: the delivery worker runs many attempts at
 * once, and one query per attempt (read the row, read the event, log the attempt, update the
 * row) made the connection pool the bottleneck. Here lookups made in the same tick share one
 * query, and attempt logs are written as a group commit (one statement for everything that
 * finished while the previous write was in flight); a caller's promise resolves once its own
 * row is committed, so a job never completes before its outcome is durable.
 */

export interface DeliveryRow {
  id: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  createdMs: number;
  eventId: string;
  webhookId: string;
  url: string;
  secret: string;
  active: boolean;
}

export interface EventBody {
  action: string;
  body: string;
}

export interface AttemptRecord {
  deliveryId: string;
  /** when the attempt started and ended, epoch ms */
  startedMs: number;
  endedMs: number;
  statusCode: number | null;
  error: string | null;
  outcome: 'delivered' | 'pending' | 'failed';
}

/** Collects keys asked for in one tick and loads them with one call. */
export function createBatchLoader<V>(load: (keys: string[]) => Promise<Map<string, V>>) {
  let waiting = new Map<string, Array<{ resolve: (v: V | null) => void; reject: (e: unknown) => void }>>();
  let scheduled = false;
  const flush = async () => {
    scheduled = false;
    const batch = waiting;
    waiting = new Map();
    try {
      const found = await load([...batch.keys()]);
      for (const [k, ws] of batch) for (const w of ws) w.resolve(found.get(k) ?? null);
    } catch (err) {
      for (const ws of batch.values()) for (const w of ws) w.reject(err);
    }
  };
  return (key: string): Promise<V | null> =>
    new Promise((resolve, reject) => {
      const ws = waiting.get(key);
      if (ws) ws.push({ resolve, reject });
      else waiting.set(key, [{ resolve, reject }]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => void flush());
      }
    });
}

export async function loadDeliveries(db: Queryable, ids: string[]): Promise<Map<string, DeliveryRow>> {
  const r = await db.query<DeliveryRow>(
    `SELECT d.id::text, d.status, d.attempts, (extract(epoch FROM d.created_at) * 1000)::float8 AS "createdMs", d.event_id::text AS "eventId",
            d.webhook_id::text AS "webhookId", w.url, w.secret, w.active
       FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
      WHERE d.id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, x]));
}

/** The webhook body of a feed event (contract §5): the feed event without its routing fields. */
export function eventBody(e: { id: string; action: string; at: Date; actor: string; note: string | null; alert: unknown }): EventBody {
  const { id, action, at, actor, note, alert } = e;
  return { action, body: JSON.stringify({ delivery_id: id, event: action, id, action, at, actor, note, alert }) };
}

export async function loadEventBodies(db: Queryable, ids: string[]): Promise<Map<string, EventBody>> {
  const r = await db.query<{ id: string; action: string; at: Date; actor: string; note: string | null; alert: unknown }>(
    `SELECT e.id::text, e.action, e.at, e.actor, e.note, row_to_json(a.*) AS alert
       FROM alert_events e JOIN LATERAL (SELECT ${ALERT_COLS} FROM alerts a WHERE a.id = e.alert_id) a ON true
      WHERE e.id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, eventBody(x)]));
}

/**
 * Event bodies by feed id: built once (the dispatcher hands over the events it just read) and
 * kept for `ttlMs`, so the hundred deliveries of one event cost no query; loaded in batches
 * otherwise. A retry after the cache let go carries the alert as it is then.
 */
export function createBodyCache(pool: Pool, ttlMs = 10 * 60_000, maxEntries = 20_000) {
  const cache = new Map<string, { v: EventBody; until: number }>();
  const load = createBatchLoader((ids) => loadEventBodies(pool, ids));
  const put = (id: string, v: EventBody, now: number) => {
    cache.set(id, { v, until: now + ttlMs });
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  };
  return {
    put,
    async get(id: string, now: number): Promise<EventBody | null> {
      const hit = cache.get(id);
      if (hit && hit.until > now) return hit.v;
      const v = await load(id);
      if (v) put(id, v, now);
      return v;
    },
  };
}

/** Logs attempts and moves their deliveries on, in one statement per group. */
export async function writeAttempts(db: Queryable, recs: AttemptRecord[]): Promise<void> {
  const col = <T>(f: (r: AttemptRecord) => T) => recs.map(f);
  await db.query(
    `WITH logged AS (
       INSERT INTO webhook_attempts (delivery_id, at, status_code, error, duration_ms)
       SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::text[], $5::int[])
     )
     UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1,
            last_error = CASE WHEN d.status = 'pending' THEN u.error ELSE d.last_error END,
            status = CASE WHEN d.status = 'pending' THEN u.outcome ELSE d.status END,
            delivered_at = CASE WHEN d.status = 'pending' AND u.outcome = 'delivered' THEN u.ended ELSE d.delivered_at END
       FROM unnest($1::bigint[], $4::text[], $6::text[], $7::timestamptz[]) AS u(id, error, outcome, ended)
      WHERE d.id = u.id`,
    [
      col((r) => r.deliveryId),
      col((r) => new Date(r.startedMs)),
      col((r) => r.statusCode),
      col((r) => r.error),
      col((r) => Math.round(r.endedMs - r.startedMs)),
      col((r) => r.outcome),
      col((r) => new Date(r.endedMs)),
    ],
  );
}

/** Group commit of attempt records: at most one write in flight; what arrives meanwhile goes in the next. */
export function createAttemptLog(pool: Pool) {
  let queued: Array<{ rec: AttemptRecord; resolve: () => void; reject: (e: unknown) => void }> = [];
  let writing = false;
  const pump = async () => {
    if (writing) return;
    writing = true;
    try {
      while (queued.length) {
        const batch = queued;
        queued = [];
        try {
          await writeAttempts(pool, batch.map((b) => b.rec));
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      writing = false;
    }
  };
  return {
    record(rec: AttemptRecord): Promise<void> {
      return new Promise((resolve, reject) => {
        queued.push({ rec, resolve, reject });
        if (!writing) setImmediate(() => void pump());
      });
    },
  };
}

/** Marks a still pending delivery failed without a further attempt (its 24 hours are over). */
export async function giveUp(db: Queryable, deliveryId: string): Promise<void> {
  await db.query(`UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1 AND status = 'pending'`, [deliveryId]);
}


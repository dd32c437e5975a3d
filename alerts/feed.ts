import pg from 'pg';
import type { Queryable } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { User } from '../platform/http/auth.js';
import { ALERT_COLS } from './lifecycle.repo.js';

/**
 * The alert feed: every row of alert_events (raised, recurred, acknowledged, resolved,
 * auto_resolved, escalated) with the alert as it is now. Its id is the Server-Sent Events id
 * and the webhook delivery id. The database announces each new row on channel `alert_feed`
 * after commit; one listening connection per process fans it out.
 */

export interface FeedEvent {
  id: string;
  action: string;
  at: Date;
  actor: string;
  note: string | null;
  audience: 'caseload' | 'supervisors';
  manager_ids: string[];
  alert: Record<string, unknown>;
}

/** Feed events after `afterId`, oldest first, that `user` may see (SQL filter), or all when user is null. */
export async function feedAfter(db: Queryable, afterId: string, limit: number, user: User | null): Promise<FeedEvent[]> {
  const managerOnly = user?.role === 'offender_manager';
  const r = await db.query(
    `SELECT e.id::text, e.action, e.at, e.actor, e.note, e.audience, s.offender_manager_ids AS manager_ids, row_to_json(a.*) AS alert
       FROM alert_events e
       JOIN LATERAL (SELECT ${ALERT_COLS} FROM alerts a WHERE a.id = e.alert_id) a ON true
       JOIN subjects s ON s.id = a.subject_id
      WHERE e.id > $1::bigint
        AND ($3::text IS NULL OR ($3::text = ANY(s.offender_manager_ids) AND e.audience = 'caseload'))
      ORDER BY e.id LIMIT $2`,
    [afterId, limit, managerOnly ? user!.id : null],
  );
  return r.rows as FeedEvent[];
}

/** Feed events by id (those that exist and are visible now), oldest first. */
export async function feedByIds(db: Queryable, ids: bigint[]): Promise<FeedEvent[]> {
  if (ids.length === 0) return [];
  const r = await db.query(
    `SELECT e.id::text, e.action, e.at, e.actor, e.note, e.audience, s.offender_manager_ids AS manager_ids, row_to_json(a.*) AS alert
       FROM alert_events e
       JOIN LATERAL (SELECT ${ALERT_COLS} FROM alerts a WHERE a.id = e.alert_id) a ON true
       JOIN subjects s ON s.id = a.subject_id
      WHERE e.id = ANY($1::bigint[])
      ORDER BY e.id`,
    [ids.map(String)],
  );
  return r.rows as FeedEvent[];
}

/** How long a missing feed id is waited for (a rolled-back transaction leaves a gap for good). */
export const FEED_GAP_WAIT_MS = 5 * 60_000;
/** a larger jump of the sequence is not tracked id by id */
const MAX_GAP_IDS = 1000;

/** The ids missing between `after` and each of `ids` (ascending), at most MAX_GAP_IDS per jump. */
export function missingIds(after: bigint, ids: bigint[]): bigint[] {
  const out: bigint[] = [];
  let prev = after;
  for (const id of ids) {
    for (let m = prev + 1n; m < id && m <= prev + BigInt(MAX_GAP_IDS); m++) out.push(m);
    prev = id;
  }
  return out;
}

/**
 * Reads the feed without skipping an event committed after a later one. Feed ids come from a
 * sequence and transactions commit out of order: id 105 can be visible while 104 is still being
 * written. The reader remembers such gaps and looks them up again on each read until they
 * appear (and are handed out then, late) or are older than FEED_GAP_WAIT_MS. `safeId` is the
 * point everything up to which has been handed out: a resume point that loses nothing.
 */
export class FeedReader {
  readUpTo: bigint;
  /** missing id → when it was first seen missing (epoch ms) */
  gaps = new Map<bigint, number>();

  constructor(from: bigint | string) {
    this.readUpTo = BigInt(from);
  }

  get safeId(): bigint {
    let min = this.readUpTo;
    for (const id of this.gaps.keys()) if (id - 1n < min) min = id - 1n;
    return min;
  }

  /** Late events that filled a gap, then new ones (at most `limit`), for `user` (null: all). */
  async read(db: Queryable, limit: number, now: number, user: User | null = null): Promise<{ events: FeedEvent[]; more: boolean }> {
    for (const [id, since] of this.gaps) if (since + FEED_GAP_WAIT_MS <= now) this.gaps.delete(id);
    const fresh = await feedAfterAll(db, this.readUpTo, limit);
    const late = this.gaps.size ? await feedByIds(db, [...this.gaps.keys()]) : [];
    for (const id of missingIds(this.readUpTo, fresh.map((e) => BigInt(e.id)))) this.gaps.set(id, now);
    for (const e of late) this.gaps.delete(BigInt(e.id));
    if (fresh.length) this.readUpTo = BigInt(fresh[fresh.length - 1]!.id);
    const events = [...late, ...fresh];
    return { events: user ? events.filter((e) => visibleTo(e, user.role, user.id)) : events, more: fresh.length === limit };
  }
}

/** Every feed event after `afterId` (the ids are needed to find gaps, so no visibility filter here). */
function feedAfterAll(db: Queryable, afterId: bigint, limit: number): Promise<FeedEvent[]> {
  return feedAfter(db, String(afterId), limit, null);
}

/** Whether a user's stream or webhook receives an event. */
export function visibleTo(e: Pick<FeedEvent, 'audience' | 'manager_ids'>, role: string, userId: string): boolean {
  if (role === 'supervisor' || role === 'admin') return true;
  return role === 'offender_manager' && e.audience === 'caseload' && e.manager_ids.includes(userId);
}

export type FeedListener = (events: FeedEvent[]) => void;

/**
 * Wraps `task` so that it never runs twice at once: a call while it runs makes it run once more
 * afterwards (what was announced meanwhile is not missed), and callers share that run.
 */
export function coalesced(task: () => Promise<void>, onError: (err: Error) => void): () => Promise<void> {
  let running: Promise<void> | null = null;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await task();
      } while (again);
    })()
      .catch(onError)
      .finally(() => {
        running = null;
      });
    return running;
  };
}

/**
 * One LISTEN connection per process; on each announcement, reads the new feed rows once and
 * hands them to every subscriber. Reconnects by itself and catches up from the last id seen.
 */
export function createFeedHub(databaseUrl: string, pool: Queryable, logger: Logger) {
  const listeners = new Set<FeedListener>();
  let reader: FeedReader | null = null;
  let client: pg.Client | null = null;
  let closed = false;
  const readNew = coalesced(async () => {
    for (;;) {
      const { events, more } = await reader!.read(pool, 500, Date.now());
      if (events.length) for (const l of listeners) l(events);
      if (!more) break;
    }
  }, (err) => logger.warn({ err: err.message }, 'alert feed read failed'));

  async function connect(): Promise<void> {
    while (!closed) {
      try {
        const c = new pg.Client({ connectionString: databaseUrl });
        c.on('error', () => undefined);
        await c.connect();
        await c.query('LISTEN alert_feed');
        c.on('notification', () => void readNew());
        c.on('end', () => {
          client = null;
          if (!closed) setTimeout(() => void connect(), 1000);
        });
        client = c;
        if (!reader) {
          const r = await pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text id FROM alert_events`);
          reader = new FeedReader(r.rows[0]!.id);
        }
        await readNew(); // catch up on what was announced while disconnected
        return;
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'alert feed listen failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  return {
    start: connect,
    subscribe(l: FeedListener): () => void {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    get connected() {
      return client !== null;
    },
    /** the point up to which every feed event has been handed out (a lossless resume point) */
    get safeId(): string {
      return String(reader?.safeId ?? 0n);
    },
    async close(): Promise<void> {
      closed = true;
      listeners.clear();
      await client?.end().catch(() => undefined);
    },
  };
}

export type FeedHub = ReturnType<typeof createFeedHub>;

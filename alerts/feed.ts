import pg from 'pg';
import type { Queryable } from '../src/db.js';
import type { Logger } from '../src/logger.js';
import type { User } from '../src/http/auth.js';
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

/** Whether a user's stream or webhook receives an event. */
export function visibleTo(e: Pick<FeedEvent, 'audience' | 'manager_ids'>, role: string, userId: string): boolean {
  if (role === 'supervisor' || role === 'admin') return true;
  return role === 'offender_manager' && e.audience === 'caseload' && e.manager_ids.includes(userId);
}

export type FeedListener = (events: FeedEvent[]) => void;

/**
 * One LISTEN connection per process; on each announcement, reads the new feed rows once and
 * hands them to every subscriber. Reconnects by itself and catches up from the last id seen.
 */
export function createFeedHub(databaseUrl: string, pool: Queryable, logger: Logger) {
  const listeners = new Set<FeedListener>();
  let lastId = '0';
  let client: pg.Client | null = null;
  let closed = false;
  let reading: Promise<void> | null = null;
  let again = false;

  async function readNew(): Promise<void> {
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      do {
        again = false;
        for (;;) {
          const events = await feedAfter(pool, lastId, 500, null);
          if (events.length === 0) break;
          lastId = events[events.length - 1]!.id;
          for (const l of listeners) l(events);
          if (events.length < 500) break;
        }
      } while (again);
    })()
      .catch((err: Error) => logger.warn({ err: err.message }, 'alert feed read failed'))
      .finally(() => {
        reading = null;
      });
    return reading;
  }

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
        if (lastId === '0') {
          const r = await pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text id FROM alert_events`);
          lastId = r.rows[0]!.id;
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
    /** the newest feed id handed out so far */
    get lastId() {
      return lastId;
    },
    async close(): Promise<void> {
      closed = true;
      listeners.clear();
      await client?.end().catch(() => undefined);
    },
  };
}

export type FeedHub = ReturnType<typeof createFeedHub>;

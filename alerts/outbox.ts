import { withTransaction, type Pool, type TxClient } from '../platform/db.js';
import { FeedReader, type FeedEvent } from './feed.js';

/**
 * One outbox dispatcher for every delivery channel (webhooks, email): new feed events become
 * delivery rows in the same transaction that moves the channel's durable cursor, then jobs after
 * commit. The cursor is the reader's safe point, so an event committed after a later one (see
 * FeedReader) is still delivered; rows are unique per (recipient, event), so a crash between
 * commit and enqueue loses nothing (the channel's requeue picks the pending rows up) and a retry
 * creates nothing twice.
 */
export interface Outbox<Row> {
  /** the channel's one-row cursor table (event_id) */
  cursorTable: 'delivery_cursor' | 'email_cursor';
  /** the delivery rows for these events, inserted with `tx`; returns what to enqueue */
  plan(tx: TxClient, events: FeedEvent[], now: number): Promise<Row[]>;
  /** after commit: the jobs for the rows created */
  enqueue(rows: Row[], events: FeedEvent[]): Promise<void>;
}

/** The reader kept between rounds of one process (after a restart: the durable cursor). */
export interface OutboxState {
  reader: FeedReader | null;
}

export const createOutboxState = (): OutboxState => ({ reader: null });

/** One round: at most `batch` feed events; returns how many it took (0: nothing new). */
export async function dispatchOutbox<Row>(pool: Pool, outbox: Outbox<Row>, state: OutboxState, now: number, batch = 500): Promise<number> {
  const round = await withTransaction(pool, async (tx) => {
    const cur = await tx.query<{ event_id: string }>(`SELECT event_id::text FROM ${outbox.cursorTable} FOR UPDATE`);
    const cursor = BigInt(cur.rows[0]!.event_id);
    // another process may have moved the durable cursor past this reader's point
    const reader = state.reader && state.reader.safeId >= cursor ? state.reader : new FeedReader(cursor);
    state.reader = null; // kept only once this round commits
    const { events } = await reader.read(tx, batch, now);
    const rows = events.length ? await outbox.plan(tx, events, now) : [];
    if (reader.safeId !== cursor) await tx.query(`UPDATE ${outbox.cursorTable} SET event_id = $1`, [String(reader.safeId)]);
    return { reader, events, rows };
  });
  state.reader = round.reader;
  await outbox.enqueue(round.rows, round.events);
  return round.events.length;
}

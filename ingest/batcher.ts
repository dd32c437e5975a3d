import type { Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { conflictOf, copyTextFor, storeReadingsFast, storeRejections } from './readings.repo.js';
import { cleanReason, MAX_RAW_BYTES, readingKey, type Reading, type Rejection } from './telemetry.js';
import { markDirty, type DirtyDevices } from '../signals/queues.js';

/** One parsed MQTT message waiting for its commit; `done` sends its PUBACK. */
export interface PendingMessage {
  topic: string;
  readings: Reading[];
  rejections: Rejection[];
  done: () => void;
}

export interface BatcherOptions {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  /** most readings per database write (a larger single message is written alone) */
  maxBatch: number;
  /** concurrent writes */
  slots: number;
  /** called after each commit with the devices that have new readings: earliest device time per stream */
  onCommitted: (dirty: DirtyDevices) => void;
}

/**
 * Groups messages from all MQTT connections into shared database writes (group commit). A
 * message's `done` runs only after all its readings and rejections are committed. While the
 * database fails, the batch is retried with backoff and no message is acknowledged; the
 * consumer (consumer.ts) stops reading from the broker once too many readings wait here, so the
 * broker holds the rest and memory stays bounded.
 */
export function createBatcher(opts: BatcherOptions) {
  const queue: PendingMessage[] = [];
  /** readings of the messages in `queue` */
  let queued = 0;
  /** the next batch, cut and made ready (de-duplicated, COPY text built) while every slot was busy */
  let ready: Prepared | null = null;
  let active = 0;
  let scheduled = false;
  let stopped = false;
  const idleWaiters: Array<() => void> = [];

  function add(msg: PendingMessage): void {
    queue.push(msg);
    queued += msg.readings.length;
    schedule();
  }

  function schedule(): void {
    if (scheduled || stopped) return;
    scheduled = true;
    // setImmediate lets every connection's socket deliver what it has before we cut a batch.
    setImmediate(() => {
      scheduled = false;
      pump();
    });
  }

  function pump(): void {
    while (active < opts.slots && (ready || queue.length > 0)) {
      const next = ready ?? prepare(takeBatch());
      ready = null;
      active++;
      void writeWithRetry(next).finally(() => {
        active--;
        if (ready || queue.length > 0) schedule();
        else if (active === 0) idleWaiters.splice(0).forEach((w) => w());
      });
    }
    // Every slot busy and a full batch waiting: do ingest's part of the next write now (its
    // de-duplication and COPY text), while the database works on the current ones, so a slot
    // that frees up starts its COPY at once. Only full batches, so light traffic still goes
    // out in a batch as soon as a slot is free.
    if (!ready && !stopped && active >= opts.slots && queued >= opts.maxBatch) ready = prepare(takeBatch(), true);
  }

  function takeBatch(): PendingMessage[] {
    const batch: PendingMessage[] = [];
    let n = 0;
    while (queue.length > 0) {
      const next = queue[0]!;
      if (batch.length > 0 && n + next.readings.length > opts.maxBatch) break;
      batch.push(queue.shift()!);
      n += next.readings.length;
    }
    queued -= n;
    return batch;
  }

  async function writeWithRetry(prepared: Prepared): Promise<void> {
    const { batch, unique, duplicates, rejections, copy } = prepared;
    for (let attempt = 0; ; attempt++) {
      if (stopped) return; // unacknowledged: the broker redelivers to the next session
      const end = opts.metrics.ingestCommitSeconds.startTimer();
      try {
        const result = await storeReadingsFast(opts.pool, unique, topicOf(batch), copy);
        const allRejections = rejections.concat(result.rejections);
        await storeRejections(opts.pool, allRejections);
        end();
        account(result.stored, duplicates + result.duplicates.length, allRejections);
        for (const m of batch) m.done();
        const dirty: DirtyDevices = new Map();
        // duplicates too: they may have been stored by an attempt whose reply was lost
        for (const r of result.stored) markDirty(dirty, r.deviceId, r.stream, r.tsMs);
        for (const r of result.duplicates) markDirty(dirty, r.deviceId, r.stream, r.tsMs);
        if (dirty.size) opts.onCommitted(dirty);
        return;
      } catch (err) {
        if (isDataError(err)) {
          // not the database being down, but something in the batch it cannot hold (e.g. a NUL
          // in a string): write the messages apart so one poison message cannot stall the rest
          await isolate(batch, err as Error);
          return;
        }
        opts.metrics.ingestDbErrors.inc();
        const delay = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        opts.logger.warn({ err: (err as Error).message, attempt, delayMs: delay, messages: batch.length }, 'ingest write failed; retrying, messages stay unacknowledged');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Writes each message alone; a message the database still refuses becomes rejections. */
  async function isolate(batch: PendingMessage[], cause: Error): Promise<void> {
    if (batch.length > 1) {
      for (const m of batch) await writeWithRetry(prepare([m]));
      return;
    }
    const m = batch[0]!;
    if (m.readings.length === 0) {
      // even its rejections cannot be stored: say so loudly and let it go rather than stall ingest
      opts.logger.error({ err: cause.message, topic: m.topic }, 'rejection refused by the database; message dropped');
      opts.metrics.readingsRejected.inc({ reason: 'unstorable' });
      m.done();
      return;
    }
    opts.logger.warn({ err: cause.message, topic: m.topic }, 'message refused by the database: stored as rejections');
    const rejections = m.rejections.concat(
      m.readings.map((r) => ({
        topic: m.topic,
        deviceId: r.deviceId,
        itemIndex: null,
        code: 'invalid' as const,
        reason: cleanReason(`invalid: ${r.stream} reading at ${r.ts} cannot be stored (${cause.message})`),
        raw: Buffer.from(JSON.stringify(r.data)).subarray(0, MAX_RAW_BYTES),
      })),
    );
    await writeWithRetry(prepare([{ ...m, readings: [], rejections: rejections.map((x) => ({ ...x, reason: cleanReason(x.reason) })) }]));
  }

  function account(stored: Reading[], duplicates: number, rejections: Rejection[]): void {
    opts.metrics.ingestBatchSize.observe(stored.length);
    const byStream = new Map<string, number>();
    for (const r of stored) byStream.set(r.stream, (byStream.get(r.stream) ?? 0) + 1);
    for (const [stream, n] of byStream) opts.metrics.readingsStored.inc({ stream }, n);
    for (const r of rejections) opts.metrics.readingsRejected.inc({ reason: r.code });
    if (duplicates) opts.metrics.readingsDuplicate.inc(duplicates);
  }

  return {
    add,
    /** messages parsed and not yet acknowledged */
    get pending() {
      return queue.length + (ready?.batch.length ?? 0);
    },
    /** resolves when nothing is queued or being written */
    idle(): Promise<void> {
      if (queue.length === 0 && !ready && active === 0) return Promise.resolve();
      return new Promise((r) => idleWaiters.push(r));
    },
    /** stops retrying: what is unacknowledged stays with the broker */
    stop(): void {
      stopped = true;
      idleWaiters.splice(0).forEach((w) => w());
    },
  };
}

/** A batch ready to write: its messages, their readings without repeats, and the COPY text. */
interface Prepared {
  batch: PendingMessage[];
  unique: Reading[];
  duplicates: number;
  rejections: Rejection[];
  /** COPY text of `unique`, when built ahead */
  copy: Buffer[] | null;
}

/** De-duplicates a batch; `ahead`, builds its COPY text too (otherwise the write builds it while its device check is answered). */
function prepare(batch: PendingMessage[], ahead = false): Prepared {
  const { unique, duplicates, rejections } = dedupe(batch);
  return { batch, unique, duplicates, rejections, copy: ahead ? copyTextFor(unique) : null };
}

/** The topic a reading came on, for its rejection; the index is built only when one is asked for. */
function topicOf(batch: PendingMessage[]): (r: Reading) => string {
  let map: Map<Reading, string> | null = null;
  return (r) => {
    if (!map) {
      map = new Map();
      for (const m of batch) for (const x of m.readings) map.set(x, m.topic);
    }
    return map.get(r) ?? `tags/v1/${r.deviceId}/${r.stream}`;
  };
}

/**
 * Removes repeated identities inside one batch: an identical repeat is a duplicate, a different
 * reading under the same identity is a conflict (contract §1: stored readings never change).
 * The readings of one message share its topic's device and stream, so identities are kept per
 * topic by device time (numbers, not a string built per reading).
 */
function dedupe(batch: PendingMessage[]): { unique: Reading[]; duplicates: number; rejections: Rejection[] } {
  const seen = new Map<string, Map<number, Reading>>();
  const unique: Reading[] = [];
  const rejections: Rejection[] = [];
  let duplicates = 0;
  for (const m of batch) {
    for (const x of m.rejections) rejections.push(x);
    if (m.readings.length === 0) continue;
    const first = m.readings[0]!;
    const key = readingKey({ deviceId: first.deviceId, stream: first.stream, tsMs: 0, ts: '' });
    let byTs = seen.get(key);
    if (!byTs) seen.set(key, (byTs = new Map()));
    for (const r of m.readings) {
      const earlier = byTs.get(r.tsMs);
      if (earlier === undefined) {
        byTs.set(r.tsMs, r);
        unique.push(r);
      } else if (canonical(earlier.data) === canonical(r.data)) duplicates++;
      else rejections.push(conflictOf(r, m.topic));
    }
  }
  return { unique, duplicates, rejections };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** PostgreSQL data exceptions (class 22): the input, not the database, is at fault. */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('22');
}

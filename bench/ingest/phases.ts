import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createMqttSession } from '../../ingest/mqtt-session.js';
import { benchMessage, copyLines, COPY_COLUMNS, type LoadShape } from '../common/data.js';
import { startPublisher, withTimeout } from '../common/procs.js';
import type { PublisherReport, PublishJob } from '../common/publisher.js';
import type { CpuUsage } from '../common/sample.js';

/** The measurements of `npm run bench:ingest`; each phase starts from an empty readings table. */

type PublisherDone = Extract<PublisherReport, { type: 'done' }>;

export interface BenchContext {
  root: string;
  pool: pg.Pool;
  mqttUrl: string;
  devices: number;
  readings: number;
  batch: number;
  pubConnections: number;
  pubWindow: number;
  subConnections: number;
  /** messages in flight per (b) subscriber connection */
  subInflight: number;
  timeoutMs: number;
  /** waits for the machine to be quiet before a measured phase */
  settle(): Promise<void>;
  /** starts measuring CPU: the processes always watched (mosquitto, postgres, redis, bench) and `extra` */
  startMeter(extra: Record<string, number[]>): Promise<{ stop(): Promise<CpuUsage> }>;
  log(msg: string): void;
}

export interface PhaseResult {
  label: string;
  readings: number;
  messages: number;
  seconds: number;
  perSec: number;
  cpu: CpuUsage;
  note?: string;
}

export interface LatencyResult extends PhaseResult {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  maxPublishLagMs: number;
}

/** Each phase's device times lie in its own past day, so no two phases share an identity. */
function shapeFor(ctx: BenchContext, phase: number, perMessage: number): LoadShape {
  const dayMs = 86_400_000;
  return { devices: ctx.devices, perMessage, tsBaseMs: Math.floor(Date.now() / 1000) * 1000 - (phase + 1) * dayMs };
}

async function emptyTables(ctx: BenchContext): Promise<void> {
  await ctx.pool.query('TRUNCATE readings, rejections');
}

async function count(ctx: BenchContext, table: 'readings' | 'rejections'): Promise<number> {
  const r = await ctx.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(r.rows[0]!.n);
}

/** (a) One COPY of the batch-shaped rows into readings (primary key in place): the database ceiling. */
export async function copyCeiling(ctx: BenchContext): Promise<PhaseResult> {
  await emptyTables(ctx);
  const shape = shapeFor(ctx, 0, ctx.batch);
  const messages = ctx.readings / ctx.batch;
  // Built before the clock starts: (a) measures the database, not the bench making rows.
  const chunks: Buffer[] = [];
  for (let m = 0; m < messages; m += 20) {
    let text = '';
    for (let k = m; k < Math.min(messages, m + 20); k++) text += copyLines(benchMessage(shape, k));
    chunks.push(Buffer.from(text));
  }
  const client = await ctx.pool.connect();
  try {
    await ctx.settle();
    const meter = await ctx.startMeter({});
    const t0 = Date.now();
    const copy = client.query(copyFrom(`COPY readings (${COPY_COLUMNS}) FROM STDIN`));
    await withTimeout(pipeline(Readable.from(chunks), copy), ctx.timeoutMs, () => `phase (a) COPY did not finish within ${ctx.timeoutMs / 1000} s`);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = await meter.stop();
    const stored = await count(ctx, 'readings');
    if (stored !== ctx.readings) throw new Error(`phase (a): COPY stored ${stored} rows, expected ${ctx.readings}`);
    return { label: '(a) COPY into readings (database ceiling)', readings: ctx.readings, messages, seconds, perSec: ctx.readings / seconds, cpu };
  } finally {
    client.release();
  }
}

function job(ctx: BenchContext, shape: LoadShape, messages: number, extra: Partial<PublishJob> = {}): PublishJob {
  return {
    url: ctx.mqttUrl,
    connections: ctx.pubConnections,
    window: ctx.pubWindow,
    shape,
    messages,
    asBatch: shape.perMessage > 1,
    ratePerSec: null,
    stampSentAt: false,
    clientPrefix: `bench-pub-${Date.now().toString(36)}`,
    ...extra,
  };
}

/**
 * (b) The single-reading messages through Mosquitto at QoS 1 into a shared group, no database:
 * received by the sessions ingest uses (ingest/mqtt-session.ts, as many connections and as many
 * messages in flight), each message acknowledged as soon as it arrives.
 */
export async function brokerCeiling(ctx: BenchContext): Promise<PhaseResult> {
  const messages = ctx.readings;
  let received = 0;
  let lastAt = 0;
  let allIn: () => void = () => {};
  const done = new Promise<void>((r) => (allIn = r));
  const tag = Date.now().toString(36);
  const subs = Array.from({ length: ctx.subConnections }, (_, i) =>
    createMqttSession({
      url: ctx.mqttUrl,
      clientId: `bench-sub-${tag}-${i}`,
      filter: `$share/bench-${tag}/tags/v1/+/+`,
      receiveMaximum: ctx.subInflight,
      keepalive: 60,
      sessionExpiry: 0,
      onMessage: (m) => {
        m.ack();
        if (++received === messages) {
          lastAt = Date.now();
          allIn();
        }
      },
      onState: () => undefined,
      onError: (err) => ctx.log(`(b) subscriber ${i}: ${err.message}`),
    }),
  );
  try {
    await Promise.all(subs.map((s) => s.start()));
    const pub = startPublisher(ctx.root, job(ctx, shapeFor(ctx, 1, 1), messages));
    try {
      await withTimeout(pub.ready, 60_000, () => 'phase (b): publisher not ready within 60 s');
      await ctx.settle();
      const meter = await ctx.startMeter({ publisher: [pub.pid] });
      const report = await withTimeout(pub.go(), ctx.timeoutMs, () => `phase (b): publishing did not finish within ${ctx.timeoutMs / 1000} s`);
      await withTimeout(done, ctx.timeoutMs, () => `phase (b): ${received} of ${messages} messages received within ${ctx.timeoutMs / 1000} s`);
      const cpu = await meter.stop();
      const seconds = (lastAt - report.firstPublishAt) / 1000;
      return { label: '(b) Mosquitto QoS 1 pub→shared sub, no database', readings: messages, messages, seconds, perSec: messages / seconds, cpu };
    } finally {
      await pub.stop();
    }
  } finally {
    await Promise.all(subs.map((s) => s.stop()));
  }
}

/** Identities (device, stream, ts) of the last reading of each of a load's last `n` messages. */
function tailIdentities(shape: LoadShape, messages: number, n = 50): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  for (let m = Math.max(0, messages - n); m < messages; m++) {
    const msg = benchMessage(shape, m);
    const [, , deviceId, stream] = msg.topic.split('/');
    out.push([deviceId!, stream!, msg.readings[msg.readings.length - 1]!.ts as string]);
  }
  return out;
}

/**
 * Waits until `expected` readings are committed; returns a time by which they were. A count(*)
 * is a scan of the whole table (8–10 ms at 100,000 rows, measured on a table like it), so
 * polling it every 20 ms took a large share of the very database the phase measures. Instead a
 * cheap probe (primary-key lookups of the last published messages' last readings, which arrive
 * last) runs every 10 ms (100 ms while publishing), and only once it finds them all does a
 * count(*) confirm; if some earlier reading is still missing, the count repeats every 10 ms.
 * The time returned is taken just before the confirming count is sent: its snapshot, taken
 * after that, holds every reading, so they were all committed by then.
 */
async function waitForReadings(ctx: BenchContext, expected: number, tail: Array<[string, string, string]>, deadline: number, phase: string, timeoutMs: number, publishing: () => boolean): Promise<number> {
  const probe = {
    text: `SELECT count(*)::int AS n FROM readings r
             JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(device_id, stream, ts)
               ON r.device_id = t.device_id AND r.stream = t.stream AND r.ts = t.ts`,
    values: [tail.map((t) => t[0]), tail.map((t) => t[1]), tail.map((t) => t[2])],
  };
  let tailSeen = false;
  for (;;) {
    const at = Date.now();
    if (!tailSeen) {
      const r = await ctx.pool.query<{ n: number }>(probe.text, probe.values);
      tailSeen = r.rows[0]!.n >= tail.length;
    }
    if (tailSeen) {
      const countAt = Date.now();
      const n = await count(ctx, 'readings');
      if (n >= expected) return countAt;
    }
    if (at > deadline) {
      const n = await count(ctx, 'readings');
      const rej = await count(ctx, 'rejections');
      throw new Error(`phase ${phase} timed out after ${timeoutMs / 1000} s: ${n} of ${expected} readings committed, ${rej} rejections`);
    }
    await new Promise((r) => setTimeout(r, publishing() ? 100 : 10));
  }
}

/** Write statements behind the stored readings: each has one now(), so one received_at. */
async function writeStats(ctx: BenchContext): Promise<string> {
  const r = await ctx.pool.query<{ writes: string; rows: string }>('SELECT count(DISTINCT received_at) AS writes, count(*) AS rows FROM readings');
  const writes = Number(r.rows[0]!.writes);
  return `${writes} writes, ${(Number(r.rows[0]!.rows) / Math.max(1, writes)).toFixed(0)} readings per write`;
}

async function checkNoRejections(ctx: BenchContext, phase: string): Promise<void> {
  const r = await ctx.pool.query<{ reason: string; n: string }>('SELECT min(reason) AS reason, count(*) AS n FROM rejections');
  if (Number(r.rows[0]!.n) > 0) throw new Error(`phase ${phase}: ingest rejected ${r.rows[0]!.n} bench readings, e.g. ${r.rows[0]!.reason}`);
}

interface IngestRun {
  report: PublisherDone;
  /** when the poll saw the last reading committed, epoch ms */
  committedAt: number;
  cpu: CpuUsage;
}

/**
 * Simulated devices → Mosquitto → the ingest child → PostgreSQL: publishes `publishJob` and
 * waits until `expected` readings are committed and none was rejected; bounded by `timeoutMs`.
 */
async function runThroughIngest(ctx: BenchContext, ingestPid: number, phase: string, publishJob: PublishJob, expected: number, timeoutMs: number): Promise<IngestRun> {
  const tail = tailIdentities(publishJob.shape, publishJob.messages);
  await emptyTables(ctx);
  const pub = startPublisher(ctx.root, publishJob);
  try {
    await withTimeout(pub.ready, 60_000, () => `phase ${phase}: publisher not ready within 60 s`);
    await ctx.settle();
    const meter = await ctx.startMeter({ ingest: [ingestPid], publisher: [pub.pid] });
    const deadline = Date.now() + timeoutMs;
    let publishing = true;
    const published = pub.go().finally(() => (publishing = false));
    published.catch(() => undefined); // on a timeout below the phase fails with that message
    const committedAt = await waitForReadings(ctx, expected, tail, deadline, phase, timeoutMs, () => publishing);
    const report = await withTimeout(published, Math.max(1000, deadline - Date.now()), () => `phase ${phase}: publisher did not finish`);
    const cpu = await meter.stop();
    await checkNoRejections(ctx, phase);
    return { report, committedAt, cpu };
  } finally {
    await pub.stop();
  }
}

/**
 * (c)/(d) End to end, acknowledged after commit: readings/s from the first publish to the poll
 * that saw the last reading committed.
 */
export async function endToEnd(ctx: BenchContext, ingestPid: number, opts: { phase: string; index: number; perMessage: number; readings: number; label: string }): Promise<PhaseResult> {
  const messages = opts.readings / opts.perMessage;
  const publishJob = job(ctx, shapeFor(ctx, opts.index, opts.perMessage), messages);
  const { report, committedAt, cpu } = await runThroughIngest(ctx, ingestPid, opts.phase, publishJob, opts.readings, ctx.timeoutMs);
  const seconds = (committedAt - report.firstPublishAt) / 1000;
  const brokerSeconds = (report.lastAckAt - report.firstPublishAt) / 1000;
  return {
    label: opts.label,
    readings: opts.readings,
    messages,
    seconds,
    perSec: opts.readings / seconds,
    cpu,
    note: `broker took all messages in ${brokerSeconds.toFixed(2)} s; ${await writeStats(ctx)}`,
  };
}

/** Publish-to-commit latency at a steady paced rate of single-reading messages. */
export async function latencyAtRate(ctx: BenchContext, ingestPid: number, ratePerSec: number, seconds: number): Promise<LatencyResult> {
  const messages = Math.round(ratePerSec * seconds);
  const publishJob = job(ctx, shapeFor(ctx, 4, 1), messages, { ratePerSec, stampSentAt: true });
  const timeoutMs = Math.max(ctx.timeoutMs, seconds * 2000);
  const { report, committedAt, cpu } = await runThroughIngest(ctx, ingestPid, 'latency', publishJob, messages, timeoutMs);
  // received_at is now() of the inserting statement, i.e. its start: the figures leave out
  // that one statement's own run and commit time.
  const r = await ctx.pool.query<{ p50: number; p99: number; max: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
            max(ms) AS max
       FROM (SELECT extract(epoch FROM received_at - (data->>'sent_at')::timestamptz) * 1000 AS ms FROM readings) l`,
  );
  const row = r.rows[0]!;
  const total = (committedAt - report.firstPublishAt) / 1000;
  return {
    label: `latency at a paced ${ratePerSec.toLocaleString('en-GB')} readings/s for ${seconds} s`,
    readings: messages,
    messages,
    seconds: total,
    perSec: messages / total,
    cpu,
    p50Ms: Number(row.p50),
    p99Ms: Number(row.p99),
    maxMs: Number(row.max),
    maxPublishLagMs: report.maxLagMs,
    note: await writeStats(ctx),
  };
}

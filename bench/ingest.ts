import { ROOT } from '../scripts/stack.js';
import { parseBenchOptions, UsageError, USAGE, type BenchOptions } from './ingest/options.js';
import { brokerCeiling, copyCeiling, endToEnd, latencyAtRate, type BenchContext } from './ingest/phases.js';
import { startIngestChild } from './common/procs.js';
import { formatCpu, formatResults, type BenchResults } from './ingest/report.js';
import { pidsByName, processMemory, startCpuMeter, startRssSampler, waitForQuiet } from './common/sample.js';
import { benchQueuePrefix, createBenchDatabase, stackUpWithRetry, startBenchBroker, type Cleanup } from './common/setup.js';

/**
 * `npm run bench:ingest`: ingest throughput against the real services. PostgreSQL and Redis
 * from the local stack, a Mosquitto of the bench's own, a fresh migrated database (dropped at
 * the end) and the real ingest as a child process. The ingest knobs come from the environment
 * (INGEST_CONNECTIONS, INGEST_INFLIGHT, INGEST_MAX_PENDING, INGEST_DB_SLOTS, INGEST_MAX_BATCH), so a
 * sweep is a shell loop.
 */

let opts: BenchOptions;
try {
  const parsed = parseBenchOptions(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    console.log(USAGE);
    process.exit(0);
  }
  opts = parsed;
} catch (err) {
  console.error(`bench: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

const log = (m: string) => {
  if (!opts.json) console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
};

/** Undo steps, run last-registered first, once: on success, on failure and on a signal. */
const cleanups: Cleanup[] = [];
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (err) {
        console.error(`bench: cleanup of ${c.what} failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
process.once('unhandledRejection', (err) => {
  console.error(`bench failed: ${(err as Error)?.message ?? String(err)}`);
  void cleanup().then(() => process.exit(1));
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`bench: ${sig}, cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

/** A phase starts only once the machine is quiet (a shared box), or after quietWaitMs anyway. */
async function settle(): Promise<void> {
  const busy = await waitForQuiet(opts.quietWaitMs, 40, log);
  if (busy > 40) log(`machine still ${busy.toFixed(0)} % busy; measuring anyway (see the "other" column)`);
}

async function main(): Promise<BenchResults> {
  const stack = await stackUpWithRetry(log);
  const db = await createBenchDatabase(stack.DATABASE_URL, opts.devices, cleanups);
  log(`database ${db.name} migrated (${db.storage}), ${opts.devices} devices registered`);
  const broker = await startBenchBroker(cleanups);
  log(`dedicated mosquitto (pid ${broker.pid}) at ${broker.url}`);

  // The cluster is shared: count only this database's backends and the cluster's own workers.
  let pgPids: number[] = [];
  const refreshPgPids = async () => {
    const r = await db.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL`,
    );
    pgPids = r.rows.map((x) => x.pid);
  };
  const ctx: BenchContext = {
    root: ROOT,
    pool: db.pool,
    mqttUrl: broker.url,
    devices: opts.devices,
    readings: opts.readings,
    batch: opts.batch,
    pubConnections: opts.pubConnections,
    pubWindow: opts.pubWindow,
    subConnections: opts.subConnections,
    subInflight: opts.subInflight,
    timeoutMs: opts.timeoutMs,
    settle,
    startMeter: async (extra) => {
      const groups = () => ({ mosquitto: [broker.pid], postgres: pgPids, redis: pidsByName('redis-server'), bench: [process.pid], ...extra });
      await refreshPgPids();
      const meter = startCpuMeter(groups);
      return {
        stop: async () => {
          await refreshPgPids(); // backends that appeared during the phase count from zero
          return meter.stop();
        },
      };
    },
    log,
  };
  const results: BenchResults = {
    storage: db.storage === 'postgresql' ? 'plain PostgreSQL (no TimescaleDB extension on this server)' : 'TimescaleDB hypertable',
    knobs: { ...opts.knobs, ...opts.ingestEnv },
    load: {
      readings: opts.readings,
      devices: opts.devices,
      batch: opts.batch,
      pub_connections: opts.pubConnections,
      pub_window: opts.pubWindow,
      sub_connections_b: opts.subConnections,
      sub_inflight_b: opts.subInflight,
    },
    ingestRssByPhase: {},
  };

  if (opts.phases.has('a')) {
    log('(a) COPY ceiling');
    results.a = await copyCeiling(ctx);
  }
  if (opts.phases.has('b')) {
    log('(b) broker ceiling');
    results.b = await brokerCeiling(ctx);
  }
  if (!['c', 'd', 'l'].some((p) => opts.phases.has(p))) return results;

  const queuePrefix = benchQueuePrefix(stack.REDIS_URL, cleanups);
  log(`starting ingest (${Object.entries(results.knobs).map(([k, v]) => `${k}=${v}`).join(' ')})`);
  const ingestEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    REDIS_URL: stack.REDIS_URL,
    MQTT_URL: broker.url,
    JWT_SECRET: stack.JWT_SECRET,
    QUEUE_PREFIX: queuePrefix,
    INGEST_INSTANCE: queuePrefix,
    LOG_LEVEL: 'info',
    ...opts.knobs,
    ...opts.ingestEnv,
  };
  const ingest = await startIngestChild(ROOT, ingestEnv, opts.ingestNodeArgs, 60_000);
  cleanups.push({ what: 'ingest child', run: () => ingest.stop() });
  const rss = startRssSampler(() => ingest.pid);
  const rssMark = (phase: string) => (results.ingestRssByPhase[phase] = rss.peak());
  results.ingestRssByPhase.started = processMemory(ingest.pid, 'VmRSS') ?? 0;
  try {
    if (opts.warmup > 0) {
      log(`warm-up: ${opts.warmup} readings through ingest (not measured)`);
      await endToEnd(ctx, ingest.pid, { phase: 'warm-up', index: 5, perMessage: 1, readings: opts.warmup, label: 'warm-up' });
      rssMark('warm-up');
    }
    if (opts.phases.has('c')) {
      log('(c) end to end, one reading per message');
      results.c = await endToEnd(ctx, ingest.pid, { phase: '(c)', index: 2, perMessage: 1, readings: opts.readings, label: '(c) end to end, 1 reading/message' });
      rssMark('(c)');
    }
    if (opts.phases.has('d')) {
      log(`(d) end to end, ${opts.batch} readings per message`);
      const label = `(d) end to end, ${opts.batch} readings/message`;
      results.d = await endToEnd(ctx, ingest.pid, { phase: '(d)', index: 3, perMessage: opts.batch, readings: opts.readings, label });
      rssMark('(d)');
    }
    if (opts.phases.has('l')) {
      log(`latency at ${opts.rate}/s for ${opts.latencySeconds} s`);
      results.latency = await latencyAtRate(ctx, ingest.pid, opts.rate, opts.latencySeconds);
      rssMark('latency');
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\ningest output (last lines):\n${ingest.tail()}`);
  } finally {
    rss.stop();
    results.ingestPeakRss = Math.max(processMemory(ingest.pid, 'VmHWM') ?? 0, rss.peak());
  }
  return results;
}

try {
  const results = await main();
  if (opts.json) console.log(JSON.stringify(results));
  else console.log(`\n${formatResults(results)}\n\n${formatCpu(results)}`);
  await cleanup();
  process.exit(0);
} catch (err) {
  console.error(`bench failed: ${(err as Error).message}`);
  await cleanup();
  process.exit(1);
}

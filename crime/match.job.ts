import type { Queue } from 'bullmq';
import type { Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { batchCrimes, finishRun, getRun, saveMatches, startRun, type CrimeRecord } from './crime.repo.js';
import { indexTrails, matchCrimes } from './match.js';
import type { CrimeParams } from './rules.js';
import { loadTrails } from './trails.repo.js';
import type { TrailCache } from './trail-cache.js';

/** Queue of crime-matching runs: one job per run, named by the run id (so a run is queued once). */
export const CRIME_QUEUE = 'crime-match';
export interface CrimeJob {
  runId: string;
}

/** ms: crimes are matched in groups whose windows, widened by G, span at most this much */
const GROUP_SPAN_MS = 26 * 3_600_000;
/** crimes per progress step */
const STEP = 250;

export async function enqueueRun(queue: Queue<CrimeJob>, runId: string): Promise<void> {
  await queue.add('run', { runId }, { jobId: `run-${runId}`, attempts: 3, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: true, removeOnFail: 100 });
}

/**
 * Runs one matching run: the batch's crimes in time order, in groups whose trails are loaded
 * once ([min from − G, max to + G], so the cost follows the crimes and their windows, not the
 * table), indexed, matched, and stored with progress after every step. With a trail cache, a
 * group it holds unchanged is matched from memory (no load, no index build; same decisions).
 */
export async function runCrimeMatch(pool: Pool, runId: string, logger?: Logger, cache?: TrailCache | null): Promise<{ crimes: number; matches: number; cached: number }> {
  const run = await getRun(pool, runId);
  if (!run) throw new Error(`crime run ${runId} not found`);
  await startRun(pool, runId);
  const G = run.params.max_gap_s * 1000;
  let matches = 0;
  let cached = 0;
  try {
    const crimes = await batchCrimes(pool, run.batch_id);
    for (const group of groups(crimes, G)) {
      const from = Math.min(...group.map((c) => c.from_at.getTime())) - G;
      const to = Math.max(...group.map((c) => c.to_at.getTime())) + G;
      const hit = cache ? await cache.serve(pool, from, to, run.params) : null;
      if (hit) cached++;
      const { ix, receivedMax } = hit ?? (await loadAndIndex(pool, from, to, run.params));
      for (let i = 0; i < group.length; i += STEP) {
        const step = group.slice(i, i + STEP).map((c) => ({ id: c.id, from: c.from_at.getTime(), to: c.to_at.getTime(), lat: c.lat, lon: c.lon }));
        const found = matchCrimes(ix, step);
        matches += found.length;
        await saveMatches(pool, runId, found, step.length, receivedMax);
      }
      logger?.info({ run: runId, crimes: group.length, fixes: ix.trails.ts.length, cached: Boolean(hit) }, 'crime matching: group done');
    }
    await finishRun(pool, runId, null);
    return { crimes: crimes.length, matches, cached };
  } catch (err) {
    await finishRun(pool, runId, (err as Error).message).catch(() => undefined);
    throw err;
  }
}

async function loadAndIndex(pool: Pool, from: number, to: number, params: CrimeParams) {
  const { trails, receivedMax } = await loadTrails(pool, from, to);
  return { ix: indexTrails(trails, params), receivedMax };
}

/** Crimes sorted by `from`, cut into groups spanning at most GROUP_SPAN_MS with their margins. */
function groups(crimes: CrimeRecord[], gapMs: number): CrimeRecord[][] {
  const out: CrimeRecord[][] = [];
  let cur: CrimeRecord[] = [];
  let start = 0;
  for (const c of [...crimes].sort((a, b) => a.from_at.getTime() - b.from_at.getTime())) {
    if (cur.length && c.to_at.getTime() + gapMs - start > GROUP_SPAN_MS) {
      out.push(cur);
      cur = [];
    }
    if (!cur.length) start = c.from_at.getTime() - gapMs;
    cur.push(c);
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * Queues again every run left `queued` or `running` (Redis lost its jobs, or the upload could not
 * queue). A run whose job still exists is not queued twice: the job id is the run's.
 */
export async function requeueOpenRuns(pool: Pool, queue: Queue<CrimeJob>): Promise<number> {
  const r = await pool.query<{ id: string }>(`SELECT id::text FROM crime_runs WHERE status IN ('queued', 'running') ORDER BY id`);
  for (const x of r.rows) await enqueueRun(queue, x.id);
  return r.rows.length;
}

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { ConfigSchema } from '../../platform/config.js';
import { DEVICE_READINGS_QUEUE } from '../../signals/queues.js';
import { WEBHOOK_QUEUE } from '../../alerts/webhooks.js';
import { ROOT } from '../../scripts/stack.js';
import type { StackEnv } from '../../scripts/stack.js';
import { freePort } from '../../scripts/stack/services.js';
import type { Pool } from 'pg';
import { stopChild, withTimeout } from './procs.js';
import { pollUntil } from './runner.js';
import { benchQueuePrefix, benchRedis, createBenchDatabase, startBenchBroker, type BenchDatabase, type BenchRedis, type Cleanup } from './setup.js';

/**
 * The service under test as child processes (`node --import tsx app/main.ts api|ingest|worker`)
 * against a fresh migrated database of the stack's PostgreSQL, the stack's Redis under a
 * random queue prefix, and a Mosquitto of the bench's own with anonymous access.
 */

export type Mode = 'api' | 'ingest' | 'worker';

export interface ServiceChild {
  mode: Mode;
  pid: number;
  child: ChildProcess;
  tail(): string;
  /** warnings and errors the part logged, counted by message (pino level ≥ 40) */
  warnings: Map<string, number>;
  stop(): Promise<void>;
}

/** Starts one part; resolves once it logs "tagwatch started". Its output is kept (last lines) for errors. */
export async function startServiceChild(mode: Mode, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<ServiceChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts', mode], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(l);
    if (lines.length > 60) lines.splice(0, lines.length - 60);
  };
  const tail = () => lines.slice(-15).join('\n');
  const warnings = new Map<string, number>();
  let partial = '';
  let up = false; // start-up warnings (single-role mode and the like) are not the fault's
  // BENCH_PART_LOGS=<dir>: every line the part writes, in <dir>/<mode>-<pid>.log (for debugging a row)
  const logDir = process.env.BENCH_PART_LOGS;
  const logFile = logDir ? join(logDir, `${mode}-${child.pid}.log`) : null;
  if (logFile) {
    mkdirSync(logDir!, { recursive: true });
    const save = (chunk: Buffer) => appendFileSync(logFile, chunk);
    child.stdout!.on('data', save);
    child.stderr!.on('data', save);
  }
  const count = (chunk: Buffer) => {
    if (!up) return;
    const text = partial + chunk.toString('utf8');
    const all = text.split('\n');
    partial = all.pop()!;
    for (const l of all) {
      if (!l.includes('"level":4') && !l.includes('"level":5')) continue;
      try {
        const j = JSON.parse(l) as { level?: number; msg?: string };
        if ((j.level ?? 0) >= 40 && j.msg) warnings.set(j.msg, (warnings.get(j.msg) ?? 0) + 1);
      } catch {
        /* not a log line */
      }
    }
  };
  child.stderr!.on('data', keep);
  child.stdout!.on('data', count);
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk);
      if (chunk.toString('utf8').includes('"tagwatch started"')) {
        up = true;
        resolve();
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`${mode} exited (code ${code}, signal ${signal}) during start-up:\n${tail()}`)));
  });
  try {
    await withTimeout(started, timeoutMs, () => `${mode} did not start within ${timeoutMs / 1000} s:\n${tail()}`);
  } catch (err) {
    await stopChild(child, 2000);
    throw err;
  }
  return { mode, pid: child.pid!, child, tail, warnings, stop: () => stopChild(child) };
}

export interface Environment {
  db: BenchDatabase;
  broker: { url: string; pid: number };
  prefix: string;
  /** the children's environment */
  env: NodeJS.ProcessEnv;
  port: number;
  children: ServiceChild[];
  start(modes: Mode[]): Promise<void>;
  /** last output lines of every child, for error messages */
  tails(): string;
}

/**
 * A fresh database (migrated, empty), a dedicated anonymous Mosquitto and a queue prefix; each
 * registers its cleanup. `start` launches the parts (api with WEBHOOK_ALLOW_PRIVATE=true).
 */
export async function createEnvironment(stack: StackEnv, cleanups: Cleanup[], extraEnv: Record<string, string> = {}): Promise<Environment> {
  const db = await createBenchDatabase(stack.PG_SUPERUSER_URL, 0, cleanups);
  const broker = await startBenchBroker(cleanups);
  const prefix = benchQueuePrefix(stack.REDIS_URL, cleanups);
  const port = await freePort();
  const inherited: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(ConfigSchema.properties)) delete inherited[k];
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    DATABASE_URL: db.url,
    REDIS_URL: stack.REDIS_URL,
    MQTT_URL: broker.url,
    JWT_SECRET: stack.JWT_SECRET,
    SECRETS_KEY: stack.SECRETS_KEY, // webhooks are registered: their secrets are encrypted with it
    QUEUE_PREFIX: prefix,
    INGEST_INSTANCE: prefix,
    MQTT_SHARE_GROUP: prefix,
    PORT: String(port),
    LOG_LEVEL: 'info',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    ...extraEnv,
  };
  const children: ServiceChild[] = [];
  cleanups.push({
    what: 'service children',
    run: async () => {
      await Promise.all(children.map((c) => c.stop()));
    },
  });
  return {
    db,
    broker,
    prefix,
    env,
    port,
    children,
    async start(modes) {
      // one at a time: each runs the (already applied) migrations at start
      for (const m of modes) children.push(await startServiceChild(m, env));
    },
    tails: () => children.map((c) => `--- ${c.mode} (pid ${c.pid}):\n${c.tail()}`).join('\n'),
  };
}

/**
 * Jobs not yet finished in the evaluation and webhook queues, sampled from Redis, and the
 * evaluation jobs completed (with the devices and fixes they evaluated, from the worker's return value).
 */
export async function queueProbe(redisTarget: BenchRedis, prefix: string, cleanups: Cleanup[]) {
  const connection = benchRedis(redisTarget);
  const evaluation = new Queue(DEVICE_READINGS_QUEUE, { connection, prefix });
  const webhooks = new Queue(WEBHOOK_QUEUE, { connection, prefix });
  const eventsConnection = benchRedis(redisTarget);
  const events = new QueueEvents(DEVICE_READINGS_QUEUE, { connection: eventsConnection, prefix });
  const completed = { jobs: 0, fixes: 0, devices: 0 };
  events.on('completed', ({ returnvalue }) => {
    completed.jobs++;
    const r = (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as { fixes?: number; devices?: number } | null;
    completed.fixes += r?.fixes ?? 0;
    completed.devices += r?.devices ?? 1;
  });
  await events.waitUntilReady();
  cleanups.push({
    what: 'queue probe',
    run: async () => {
      await events.close();
      await evaluation.close();
      await webhooks.close();
      connection.disconnect();
      eventsConnection.disconnect();
    },
  });
  const pending = async (q: Queue) => {
    const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
  };
  /** (device, stream) marks not yet taken by an evaluation job */
  const marks = () => connection.hlen(`${prefix}:device-dirty`);
  return { evaluation: () => pending(evaluation), webhooks: () => pending(webhooks), marks, completed };
}

/** A random id suffix, for bench users and tokens. */
export const tag = () => randomBytes(3).toString('hex');

/**
 * Waits until every published fix is stored and the evaluation queue has stayed empty for two
 * polls a second apart (at most `timeoutMs`); false when it did not drain in time.
 */
export async function waitDrained(pool: Pool, evaluationBacklog: () => Promise<number>, published: number, timeoutMs: number): Promise<boolean> {
  let quietPolls = 0;
  return pollUntil(async () => {
    const n = Number((await pool.query<{ n: string }>(`SELECT count(*) n FROM readings`)).rows[0]!.n);
    const q = await evaluationBacklog();
    quietPolls = n >= published && q === 0 ? quietPolls + 1 : 0;
    return quietPolls >= 2;
  }, timeoutMs, 1000);
}

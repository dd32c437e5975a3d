import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../platform/config.js';
import { createPool, type Pool } from '../../platform/db.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { buildApp } from '../../app/app.js';
import { createTokenVerifier, type Role } from '../../platform/http/auth.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { closeRuntime, createRuntime, readiness, startIngest, startWorker, type Part, type Runtime } from '../../app/services.js';
import { freePort, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { createFeedHub } from '../../alerts/feed.js';
import { connectBrokerAdmin, type BrokerAdmin } from '../../registry/dynsec.js';
import { Queue } from 'bullmq';
import { CRIME_QUEUE, type CrimeJob } from '../../crime/match.job.js';

export const stack = () => inject('stack');

/** A database of its own for one test file, copied from the migrated template. */
export async function createTestDatabase(): Promise<{ url: string; pool: Pool; drop: () => Promise<void> }> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const base = stack().DATABASE_URL.replace(/\/[^/]+$/, '');
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDb')}`);
  await admin.end();
  const url = `${base}/${name}`;
  const pool = createPool(url, 5);
  return {
    url,
    pool,
    drop: async () => {
      await pool.end();
      const a = new pg.Client({ connectionString: `${base}/postgres` });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** A Mosquitto of its own (same configuration as the stack's) so test files never see each other's telemetry. */
export interface TestBroker {
  url: string;
  port: number;
  /** with dynsec: the service's credentials (admin and ingest), as config overrides */
  credentials: Record<string, string>;
  stop: () => void;
}

export async function startTestBroker(opts: { dynsec?: boolean } = {}): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'tagwatch-mqtt-'));
  const port = await freePort();
  const admin = { adminUser: 'test-admin', adminPassword: randomBytes(12).toString('hex') };
  const h = await startMosquitto(dir, port, opts.dynsec ? admin : undefined);
  const credentials: Record<string, string> = {};
  if (opts.dynsec) {
    const ingest = { user: 'test-ingest', password: randomBytes(12).toString('hex') };
    const b = await connectBrokerAdmin(h.url, admin.adminUser, admin.adminPassword);
    await b.ensureServiceClient(ingest.user, ingest.password);
    await b.close();
    Object.assign(credentials, { MQTT_USERNAME: ingest.user, MQTT_PASSWORD: ingest.password, MQTT_ADMIN_USERNAME: admin.adminUser, MQTT_ADMIN_PASSWORD: admin.adminPassword });
  }
  return {
    url: h.url,
    port,
    credentials,
    stop: () => {
      stopMosquitto(dir);
      if (!process.env.KEEP_TEST_BROKER) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function testConfig(overrides: Record<string, string>): Config {
  const s = stack();
  return loadConfig({
    DATABASE_URL: s.DATABASE_URL,
    REDIS_URL: s.REDIS_URL,
    MQTT_URL: s.MQTT_URL,
    JWT_SECRET: s.JWT_SECRET,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    INGEST_INSTANCE: `t${randomBytes(5).toString('hex')}`,
    INGEST_CONNECTIONS: '8',
    ...overrides,
  });
}

export function token(role: Role, sub = `${role}-1`): Promise<string> {
  return mintDevToken(stack().JWT_SECRET, sub, role);
}

export async function authHeader(role: Role, sub?: string): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${await token(role, sub)}` };
}

export interface TestService {
  rt: Runtime;
  app: FastifyInstance;
  ingest: Part | null;
  stop: () => Promise<void>;
}

/** The service's parts in this process against real services; the app is built, not listening. */
export async function startTestService(config: Config, opts: { ingest?: boolean; worker?: boolean; feed?: boolean } = {}): Promise<TestService> {
  const rt = await createRuntime(config, createLogger(config.LOG_LEVEL), createMetrics());
  const parts: Part[] = [];
  const ingest = opts.ingest ? await startIngest(rt) : null;
  if (ingest) parts.push(ingest);
  const worker = opts.worker ? await startWorker(rt) : null;
  const feed = opts.feed ? createFeedHub(config.DATABASE_URL, rt.pool, rt.logger) : null;
  await feed?.start();
  const brokerAdmin: BrokerAdmin | null =
    config.MQTT_ADMIN_USERNAME && config.MQTT_ADMIN_PASSWORD ? await connectBrokerAdmin(config.MQTT_URL, config.MQTT_ADMIN_USERNAME, config.MQTT_ADMIN_PASSWORD) : null;
  const crimeQueue = new Queue<CrimeJob>(CRIME_QUEUE, { connection: rt.redis, prefix: config.QUEUE_PREFIX });
  const app = await buildApp({
    crimeQueue,
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    verifyToken: createTokenVerifier({ jwtSecret: config.JWT_SECRET }),
    feed,
    brokerAdmin,
    allowPrivateWebhooks: config.WEBHOOK_ALLOW_PRIVATE,
    emailEnabled: config.SMTP_URL !== undefined,
    readiness: () => readiness(rt, parts),
    info: () => ({ storage: rt.storage }),
  });
  return {
    rt,
    app,
    ingest,
    stop: async () => {
      await feed?.close();
      await app.close();
      await crimeQueue.close();
      await brokerAdmin?.close();
      if (ingest) await ingest.stop();
      if (worker) await worker.stop();
      await closeRuntime(rt);
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T | null | undefined | false | 0> | T | null | undefined | false | 0,
  what: string,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as T;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { brokerUrls, loadConfig, type Config } from '../../platform/config.js';
import { createPool, withTransaction, type Pool, type TxClient } from '../../platform/db.js';
import { consoleSettings } from '../../console/settings.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { buildApp } from '../../app/app.js';
import { authOptions, createTokenVerifier, type Role } from '../../platform/http/auth.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { closeRuntime, createRuntime, readiness, startIngest, startWorker, type Part, type Runtime } from '../../app/services.js';
import { freePort, OWNER_ROLE, startMosquitto, stopMosquitto } from '../../scripts/stack/services.js';
import { withDatabase } from './global-setup.js';
import { createFeedHub } from '../../alerts/feed.js';
import { subscriptionSettings } from '../../alerts/webhooks.routes.js';
import { streamSettings } from '../../alerts/stream.routes.js';
import { connectBrokerAdmin, connectBrokerAdmins, type BrokerAdmin } from '../../registry/dynsec.js';
import { readBrokerCa } from '../../registry/ca.js';
import { Queue } from 'bullmq';
import { CRIME_QUEUE, type CrimeJob } from '../../crime/match.job.js';
import { integrityParams } from '../../health/integrity.js';

export const stack = () => inject('stack');

/**
 * A database of its own for one test file, copied from the migrated template and owned by the
 * owner role. `url` and `pool` connect as the runtime role, as the service runs in production;
 * `ownerUrl` as the schema owner (migrations, retention).
 */
export async function createTestDatabase(): Promise<{ url: string; ownerUrl: string; pool: Pool; drop: () => Promise<void> }> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const s = stack();
  const admin = new pg.Client({ connectionString: s.PG_SUPERUSER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDb')} OWNER ${OWNER_ROLE}`);
  await admin.end();
  const url = withDatabase(s.DATABASE_URL, name);
  const pool = createPool(url, 5);
  return {
    url,
    ownerUrl: withDatabase(s.MIGRATION_DATABASE_URL, name),
    pool,
    drop: async () => {
      await pool.end();
      const a = new pg.Client({ connectionString: s.PG_SUPERUSER_URL });
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
  /** its configuration and data directory */
  dir: string;
  /** with dynsec: the service's credentials (admin and ingest), as config overrides */
  credentials: Record<string, string>;
  /** with `tls`: the broker's mqtts:// URL and the CA file that signed its certificate */
  tls?: { url: string; caFile: string };
  stop: () => void;
}

/** With `sameAccountsAs`, a dynsec broker with the same admin and ingest accounts as that one (a second broker of one service). */
export async function startTestBroker(opts: { dynsec?: boolean; tls?: boolean; sameAccountsAs?: TestBroker } = {}): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'tagwatch-mqtt-'));
  const port = await freePort();
  const same = opts.sameAccountsAs?.credentials;
  const admin = { adminUser: 'test-admin', adminPassword: same?.MQTT_ADMIN_PASSWORD ?? randomBytes(12).toString('hex') };
  let tlsPort = opts.tls ? await freePort() : 0;
  while (opts.tls && tlsPort === port) tlsPort = await freePort();
  const h = await startMosquitto(dir, port, opts.dynsec ? admin : undefined, opts.tls ? { port: tlsPort } : undefined);
  const credentials: Record<string, string> = {};
  if (opts.dynsec) {
    const ingest = { user: 'test-ingest', password: same?.MQTT_PASSWORD ?? randomBytes(12).toString('hex') };
    const b = await connectBrokerAdmin(h.url, admin.adminUser, admin.adminPassword);
    await b.ensureServiceClient(ingest.user, ingest.password);
    await b.close();
    Object.assign(credentials, { MQTT_USERNAME: ingest.user, MQTT_PASSWORD: ingest.password, MQTT_ADMIN_USERNAME: admin.adminUser, MQTT_ADMIN_PASSWORD: admin.adminPassword });
  }
  return {
    url: h.url,
    port,
    dir,
    credentials,
    ...(h.tls ? { tls: { url: h.tls.url, caFile: h.tls.caFile } } : {}),
    stop: () => {
      stopMosquitto(dir);
      if (!process.env.KEEP_TEST_BROKER) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function testConfig(overrides: Record<string, string>): Config {
  const s = stack();
  // a test database of the stack: the worker's maintenance runs as its owner, as in production
  const runtimeBase = withDatabase(s.DATABASE_URL, '');
  const db = overrides.DATABASE_URL?.startsWith(runtimeBase) ? overrides.DATABASE_URL.slice(runtimeBase.length) : null;
  return loadConfig({
    ...(db ? { MIGRATION_DATABASE_URL: withDatabase(s.MIGRATION_DATABASE_URL, db) } : {}),
    DATABASE_URL: s.DATABASE_URL,
    REDIS_URL: s.REDIS_URL,
    MQTT_URL: s.MQTT_URL,
    JWT_SECRET: s.JWT_SECRET,
    SECRETS_KEY: s.SECRETS_KEY,
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

/** POSTs as an admin through the app (no network), for a test's set-up: throws on any status ≥ 300; the JSON body. */
export async function adminPoster(svc: TestService): Promise<(url: string, payload: object) => Promise<{ id?: string }>> {
  const admin = await authHeader('admin');
  return async (url, payload) => {
    const res = await svc.app.inject({ method: 'POST', url, headers: admin, payload });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.body}`);
    return res.json() as { id?: string };
  };
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
    config.MQTT_ADMIN_USERNAME && config.MQTT_ADMIN_PASSWORD ? await connectBrokerAdmins(brokerUrls(config.MQTT_URL), config.MQTT_ADMIN_USERNAME, config.MQTT_ADMIN_PASSWORD, { serviceUsernames: [config.MQTT_USERNAME], ca: readBrokerCa(config.MQTT_CA_FILE) }) : null;
  const crimeQueue = new Queue<CrimeJob>(CRIME_QUEUE, { connection: rt.redis, prefix: config.QUEUE_PREFIX });
  const app = await buildApp({
    crimeQueue,
    pool: rt.pool,
    logger: rt.logger,
    metrics: rt.metrics,
    verifyToken: createTokenVerifier(authOptions(config)),
    feed,
    stream: streamSettings(config),
    brokerAdmin,
    allowPrivateWebhooks: config.WEBHOOK_ALLOW_PRIVATE,
    subscriptions: subscriptionSettings(config),
    alcoholReviewRole: config.ALCOHOL_REVIEW_ROLE,
    emailEnabled: config.SMTP_URL !== undefined,
    readiness: () => readiness(rt, parts),
    info: () => ({ storage: rt.storage }),
    reevaluateMaxFixes: config.REEVALUATE_MAX_FIXES,
    monitoring: integrityParams(config),
    console: consoleSettings(config),
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

/**
 * A transaction held open until `commit()`, as a slow writer's: `tx` (from withTransaction, the
 * only source of a TxClient) is usable meanwhile.
 */
export async function heldTransaction(pool: Pool): Promise<{ tx: TxClient; commit: () => Promise<void> }> {
  let finish!: () => void;
  const hold = new Promise<void>((r) => (finish = r));
  let ready!: (tx: TxClient) => void;
  const opened = new Promise<TxClient>((r) => (ready = r));
  const done = withTransaction(pool, async (tx) => {
    ready(tx);
    await hold;
  });
  const tx = await Promise.race([opened, done.then(() => Promise.reject(new Error('transaction ended before it was used')))]);
  return {
    tx,
    commit: async () => {
      finish();
      await done;
    },
  };
}

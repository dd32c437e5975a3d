import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP_ROLE, ensureDatabaseRoles, OWNER_ROLE, writeSecretFile } from './services.js';
import { haPgPorts, startHaPostgres, stopHaPostgres, type HaPgPorts } from './ha-postgres.js';
import { haRedisPorts, MASTER_NAME, startHaRedis, stopHaRedis, type HaRedisPorts } from './ha-redis.js';

/**
 * `npm run stack:up -- --ha`: the light stack (its Mosquitto serves both) plus the highly
 * available engines of issue 14 §2 under .stack/ha: Patroni-managed PostgreSQL behind HAProxy
 * and Redis with Sentinels. The environment it writes points the service at them.
 */

const HA_PACKAGES: Array<{ bin: string; pkg: string }> = [
  { bin: '/usr/bin/etcd', pkg: 'etcd-server' },
  { bin: '/usr/bin/patroni', pkg: 'patroni' },
  // Patroni's etcd3 client imports the python-etcd module for its exceptions
  { bin: '/usr/lib/python3/dist-packages/etcd/__init__.py', pkg: 'python3-etcd' },
  { bin: '/usr/sbin/haproxy', pkg: 'haproxy' },
  { bin: '/usr/bin/redis-sentinel', pkg: 'redis-sentinel' },
];

/** apt-get install of what is missing; `sudo` when not root (as the test script does for chromium). */
export function ensureHaPackages(log: (m: string) => void): void {
  const missing = HA_PACKAGES.filter((p) => !existsSync(p.bin)).map((p) => p.pkg);
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')} with apt-get`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const apt = (...args: string[]) => {
    const [cmd, ...rest] = [...sudo, 'apt-get', '-o', 'DPkg::Lock::Timeout=300', ...args];
    execFileSync(cmd!, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  apt('update', '-qq');
  // where systemd runs, Debian starts the packages' own services on their default ports; this
  // stack runs its own instances on its own ports beside them
  apt('install', '-y', '-qq', '--no-install-recommends', ...missing);
}

export interface HaEnv {
  DATABASE_URL: string;
  MIGRATION_DATABASE_URL: string;
  PG_SUPERUSER_URL: string;
  REDIS_URL: string;
  REDIS_SENTINELS: string;
  REDIS_MASTER_NAME: string;
  HA_DIR: string;
}

export interface HaLayout {
  dir: string;
  pg: HaPgPorts;
  redis: HaRedisPorts;
}

export function haLayout(dir: string, env: NodeJS.ProcessEnv = process.env): HaLayout {
  return { dir, pg: haPgPorts(env), redis: haRedisPorts(env) };
}

/** Passwords of Patroni's superuser and replication users, made once per stack. */
function haSecrets(dir: string): { superuser: string; replication: string } {
  const file = join(dir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as { superuser: string; replication: string };
  const s = { superuser: randomBytes(18).toString('base64url'), replication: randomBytes(18).toString('base64url') };
  writeSecretFile(file, JSON.stringify(s));
  return s;
}

const chownPostgres = (path: string) => {
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', path]);
};

/**
 * Starts (idempotent) the HA engines in `layout.dir` and makes the tagwatch database and its two
 * roles (passwords given, the light stack's) through HAProxy.
 */
export async function haUp(layout: HaLayout, rolePasswords: { owner: string; app: string }, log: (m: string) => void = console.log): Promise<HaEnv> {
  ensureHaPackages(log);
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  const secrets = haSecrets(layout.dir);
  await Promise.all([startHaPostgres(layout.dir, layout.pg, secrets, chownPostgres), startHaRedis(layout.dir, layout.redis)]);
  const superuser = (db: string) => `postgres://postgres@127.0.0.1:${layout.pg.haproxy}/${db}`;
  const c = await connectThroughHaproxy(superuser('postgres'), 60_000);
  try {
    const r = await c.query(`SELECT 1 FROM pg_database WHERE datname = 'tagwatch'`);
    if (r.rowCount === 0) await c.query('CREATE DATABASE tagwatch');
  } finally {
    await c.end();
  }
  await ensureDatabaseRoles(superuser('postgres'), rolePasswords, ['tagwatch']);
  const role = (name: string, password: string) => `postgres://${name}:${encodeURIComponent(password)}@127.0.0.1:${layout.pg.haproxy}/tagwatch`;
  return {
    DATABASE_URL: role(APP_ROLE, rolePasswords.app),
    MIGRATION_DATABASE_URL: role(OWNER_ROLE, rolePasswords.owner),
    PG_SUPERUSER_URL: superuser('postgres'),
    // the first master, for tools; the service follows the Sentinels
    REDIS_URL: `redis://127.0.0.1:${layout.redis.servers[0]}`,
    REDIS_SENTINELS: layout.redis.sentinels.map((p) => `127.0.0.1:${p}`).join(','),
    REDIS_MASTER_NAME: MASTER_NAME,
    HA_DIR: layout.dir,
  };
}

/**
 * A connection through HAProxy, retried until it answers: HAProxy checks each node every
 * second, so for a moment after Patroni elects a primary no server may be marked up yet.
 */
export async function connectThroughHaproxy(url: string, timeoutMs: number) {
  const { default: pg } = await import('pg');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
      return c;
    } catch (err) {
      await c.end().catch(() => {});
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export async function haDown(layout: HaLayout): Promise<void> {
  if (!existsSync(layout.dir)) return;
  await stopHaRedis(layout.dir, layout.redis);
  await stopHaPostgres(layout.dir, layout.pg);
}

import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { ROOT } from '../../scripts/stack.js';
import { freePort } from '../../scripts/stack/services.js';

/**
 * Issue 10 "clone it anywhere": a clone under a 0700 directory (as /root or `mktemp -d` are)
 * brings its stack up and down. As root, PostgreSQL and Mosquitto run as their own users, who
 * cannot enter that directory; as another user, the services run as that user.
 */

const isGitCheckout = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD']).status === 0;
const asRoot = process.getuid?.() === 0;
// the unprivileged run uses this checkout's node_modules, which `nobody` cannot reach when this
// checkout itself sits in a 0700 directory: that case is skipped then (the root case still runs)
const unprivileged =
  asRoot && spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-x', join(ROOT, 'node_modules', '.bin', 'tsx')]).status === 0 ? 'nobody' : null;
const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch (e) {
      console.warn('clone-anywhere cleanup:', e);
    }
  }
});

function readEnv(file: string): Record<string, string> {
  return Object.fromEntries(readFileSync(file, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Clones HEAD into a fresh 0700 directory (owned by `user` when given); returns the checkout. */
function cloneInto0700(user: string | null): string {
  const parent = mkdtempSync(join(tmpdir(), 'tagwatch-clone-'));
  expect(statSync(parent).mode & 0o777).toBe(0o700);
  const checkout = join(parent, 'tagwatch');
  execFileSync('git', ['clone', '-q', ROOT, checkout]);
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'));
  if (user) execFileSync('chown', ['-R', `${user}:`, parent]);
  cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
  return checkout;
}

function stackCmd(checkout: string, user: string | null, ports: number[], cmd: string): string {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: user ? join(checkout, '..') : (process.env.HOME ?? '/'),
    STACK_PG_PORT: String(ports[0]),
    STACK_REDIS_PORT: String(ports[1]),
    STACK_MQTT_PORT: String(ports[2]),
    STACK_MQTTS_PORT: String(ports[3]),
  };
  const tsx = join(checkout, 'node_modules', '.bin', 'tsx');
  const [c, a] = user ? ['runuser', ['-u', user, '--', tsx, 'scripts/stack.ts', cmd]] : [tsx, ['scripts/stack.ts', cmd]];
  const r = spawnSync(c, a, { cwd: checkout, env, encoding: 'utf8', timeout: 90_000 });
  if (r.status !== 0 && cmd !== 'status') throw new Error(`stack.ts ${cmd} in ${checkout} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function upUseDown(user: string | null): Promise<void> {
  const checkout = cloneInto0700(user);
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  cleanups.push(() => void stackCmd(checkout, user, ports, 'destroy'));
  stackCmd(checkout, user, ports, 'up');
  const env = readEnv(join(checkout, '.stack', 'env'));

  // the schema owner's URL: the service's own (runtime) role may create nothing
  const db = new pg.Client({ connectionString: env.MIGRATION_DATABASE_URL });
  await db.connect();
  await db.query(`CREATE TABLE t (x int)`);
  await db.query(`INSERT INTO t VALUES (1)`);
  expect((await db.query(`SELECT sum(x)::int AS n FROM t`)).rows[0]).toEqual({ n: 1 });
  await db.end();
  const redis = new Redis(env.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  expect(await redis.ping()).toBe('PONG');
  redis.disconnect();
  const client = await mqtt.connectAsync(env.MQTT_URL!, { username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD, reconnectPeriod: 0 });
  await client.endAsync();

  const owner = (p: string) => statSync(p).uid;
  const pgData = join(checkout, '.stack', 'postgres', 'data');
  if (user) {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
    expect(owner(pgData)).toBe(uid); // the services run as the invoking user
  }
  expect(stackCmd(checkout, user, ports, 'status')).toContain('stack running');
  stackCmd(checkout, user, ports, 'down');
  expect(stackCmd(checkout, user, ports, 'status')).toContain('stack not running');
  stackCmd(checkout, user, ports, 'destroy');
  expect(existsSync(join(checkout, '.stack'))).toBe(false);
}

describe.skipIf(!isGitCheckout)('a clone in a 0700 directory', () => {
  it(`brings its stack up and down as ${asRoot ? 'root' : 'the current user'}`, async () => {
    await upUseDown(null);
  }, 120_000);

  // CI clones into the same path every run: a run killed before `down` leaves the stack's
  // directory under /var/tmp (named by the checkout's path), broker passwords and all, and the
  // next clone at that path must not adopt it ("Connection refused: Not authorized")
  it.skipIf(!asRoot)('a new clone at the path of a deleted one, whose stack was left running, brings up a stack of its own', async () => {
    const first = cloneInto0700(null);
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    stackCmd(first, null, ports, 'up');
    const stale = readEnv(join(first, '.stack', 'env'));
    const outside = realpathSync(join(first, '.stack', 'mosquitto'));
    cleanups.push(() => rmSync(join(outside, '..'), { recursive: true, force: true }));
    // its Redis lives inside the checkout (Redis runs as root): stopped after the test
    const strayRedis = Number(readFileSync(join(first, '.stack', 'redis', 'redis.pid'), 'utf8').trim());
    cleanups.push(() => {
      try {
        process.kill(strayRedis);
      } catch {
        /* gone */
      }
    });
    rmSync(first, { recursive: true, force: true }); // no down, no destroy: the services still run
    execFileSync('git', ['clone', '-q', ROOT, first]);
    symlinkSync(join(ROOT, 'node_modules'), join(first, 'node_modules'));
    cleanups.push(() => void stackCmd(first, null, ports, 'destroy'));
    stackCmd(first, null, ports, 'up');
    const env = readEnv(join(first, '.stack', 'env'));
    expect(env.MQTT_ADMIN_PASSWORD).not.toBe(stale.MQTT_ADMIN_PASSWORD);
    const client = await mqtt.connectAsync(env.MQTT_URL!, { username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD, reconnectPeriod: 0 });
    await client.endAsync();
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    await db.end();
    stackCmd(first, null, ports, 'destroy');
  }, 180_000);

  it.skipIf(!unprivileged)('brings its stack up and down as an unprivileged user (nobody), the services running as that user', async () => {
    await upUseDown(unprivileged);
  }, 120_000);
});

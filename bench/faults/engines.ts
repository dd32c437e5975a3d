import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackEnv } from '../../scripts/stack.js';
import { stackHaLayout } from '../../scripts/stack.js';
import { connectThroughHaproxy, type HaEnv, type HaLayout } from '../../scripts/stack/ha.js';
import { currentLeader, waitForPrimary } from '../../scripts/stack/ha-postgres.js';
import { redisPidFile, startHaRedis, waitForMaster } from '../../scripts/stack/ha-redis.js';
import { createRedis } from '../../platform/redis.js';
import type { BenchRedis } from '../common/setup.js';

/**
 * The engines one row of the fault suite runs on. The light stack's PostgreSQL and Redis for
 * most rows; for the failover rows the HA stack's (`stack:up -- --ha`): the row's database made
 * on the Patroni cluster through HAProxy (as the cluster's superuser), every part connecting
 * through HAProxy, and Redis reached through the Sentinels.
 */
export interface Engines {
  kind: 'light' | 'ha';
  /** the superuser on the `postgres` database: through HAProxy on the HA stack */
  pgSuperuserUrl: string;
  /** how the suite itself reaches Redis (queue probe, key cleanup) */
  redis: BenchRedis;
  /** the parts' Redis settings */
  redisEnv: Record<string, string>;
  /** the HA stack's layout (ports, directory), for the failover rows */
  ha?: HaLayout;
}

export function lightEngines(stack: StackEnv): Engines {
  return { kind: 'light', pgSuperuserUrl: stack.PG_SUPERUSER_URL, redis: stack.REDIS_URL, redisEnv: { REDIS_URL: stack.REDIS_URL } };
}

export function haEngines(stack: StackEnv & HaEnv): Engines {
  const sentinels = { REDIS_SENTINELS: stack.REDIS_SENTINELS, REDIS_MASTER_NAME: stack.REDIS_MASTER_NAME };
  return { kind: 'ha', pgSuperuserUrl: stack.PG_SUPERUSER_URL, redis: sentinels, redisEnv: sentinels, ha: stackHaLayout() };
}

const MINUTE = 60_000;

/**
 * Waits until the HA engines are whole again before a row: a primary with its synchronous
 * standby streaming (a killed node is restarted by its Patroni and rejoins as a replica, after
 * pg_rewind), writable through HAProxy; a Redis master the Sentinels agree on with its replica
 * connected and in sync.
 */
export async function waitHealthy(e: Engines, log: (m: string) => void): Promise<void> {
  if (!e.ha) return;
  const t0 = Date.now();
  await waitForPrimary(e.ha.pg, 3 * MINUTE, true);
  const c = await connectThroughHaproxy(e.pgSuperuserUrl, MINUTE);
  try {
    for (;;) {
      const r = await c.query<{ primary: boolean }>('SELECT NOT pg_is_in_recovery() AS primary');
      if (r.rows[0]!.primary) break;
      await sleep(250);
    }
  } finally {
    await c.end();
  }
  await startHaRedis(e.ha.dir, e.ha.redis); // any server down (a killed master) started again: it rejoins as a replica
  const master = await waitForMaster(e.ha.redis, MINUTE);
  const deadline = Date.now() + 2 * MINUTE;
  for (;;) {
    const r = createRedis({ REDIS_URL: `redis://127.0.0.1:${master}` });
    r.on('error', () => undefined);
    const info = await r.info('replication').catch(() => '');
    r.disconnect();
    if (/^slave0:.*state=online/m.test(info)) break;
    if (Date.now() > deadline) throw new Error(`Redis master ${master} has no replica online after 2 minutes:\n${info}`);
    await sleep(250);
  }
  log(`HA engines healthy (PostgreSQL leader ${await currentLeader(e.ha.pg)} with a synchronous standby, Redis master ${master} with its replica) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** SIGKILLs the postmaster of the Patroni leader; resolves when another node is primary, writable through HAProxy. */
export async function failOverPostgres(e: Engines, log: (m: string) => void): Promise<void> {
  const ha = e.ha!;
  const leader = await currentLeader(ha.pg);
  if (!leader) throw new Error('no Patroni leader to kill');
  const postmaster = Number(readFileSync(join(ha.dir, leader, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const t0 = Date.now();
  process.kill(postmaster, 'SIGKILL');
  const deadline = t0 + 3 * MINUTE;
  for (;;) {
    const now = await currentLeader(ha.pg);
    if (now && now !== leader) {
      const c = await connectThroughHaproxy(e.pgSuperuserUrl, MINUTE).catch(() => null);
      const writable = c ? await c.query<{ p: boolean }>('SELECT NOT pg_is_in_recovery() AS p').then((r) => r.rows[0]!.p, () => false) : false;
      await c?.end().catch(() => undefined);
      if (writable) {
        log(`pg-failover: postmaster of ${leader} (pid ${postmaster}) SIGKILLed; ${now} primary through HAProxy after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        return;
      }
    }
    if (Date.now() > deadline) throw new Error(`no new PostgreSQL primary 3 minutes after killing ${leader}`);
    await sleep(100);
  }
}

/**
 * SIGKILLs the Redis master the Sentinels name; resolves when they agree on the promoted
 * replica, `downMs` at least after the kill, with the killed server started again (the
 * Sentinels turn it into a replica of the new master).
 */
export async function failOverRedis(e: Engines, downMs: number, log: (m: string) => void): Promise<void> {
  const ha = e.ha!;
  const master = await waitForMaster(ha.redis, MINUTE);
  const t0 = Date.now();
  process.kill(Number(readFileSync(redisPidFile(ha.dir, master), 'utf8').trim()), 'SIGKILL');
  let promoted = master;
  while (promoted === master) {
    promoted = await waitForMaster(ha.redis, MINUTE);
    if (promoted === master) await sleep(100);
  }
  const tp = Date.now();
  await sleep(Math.max(0, t0 + downMs - Date.now()));
  await startHaRedis(ha.dir, ha.redis);
  log(`redis-failover: master ${master} SIGKILLed; ${promoted} promoted after ${((tp - t0) / 1000).toFixed(1)} s; ${master} restarted after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { isRunning, waitForPort } from './services.js';
import { stopDaemon } from './daemon.js';

/**
 * The highly available Redis of `npm run stack:up -- --ha` (issue 14 §2): a master, a replica
 * and three Sentinels (quorum 2) that promote the replica when the master is down for
 * DOWN_AFTER_MS. All on loopback; data in `dir`.
 */

export const MASTER_NAME = 'tagwatch';
/** a master unanswering this long (ms) is subjectively down; two Sentinels agreeing start the failover */
const DOWN_AFTER_MS = 2000;

export interface HaRedisPorts {
  /** the first master and its replica (roles change after a failover) */
  servers: number[];
  sentinels: number[];
}

export function haRedisPorts(env: NodeJS.ProcessEnv = process.env): HaRedisPorts {
  const base = Number(env.STACK_HA_REDIS_PORT ?? 56380);
  return { servers: [base + 1, base + 2], sentinels: [base + 11, base + 12, base + 13] };
}

const serverDir = (dir: string, port: number) => join(dir, 'redis', String(port));

/**
 * Writes a configuration only when missing: Redis and Sentinel rewrite their own files (a
 * replica's master, Sentinel's view after a failover), and a restart must keep that view.
 */
function writeOnce(file: string, lines: string[]): void {
  if (!existsSync(file)) writeFileSync(file, lines.join('\n') + '\n');
}

function startServer(dir: string, port: number, conf: string[], sentinel: boolean): void {
  const d = serverDir(dir, port);
  mkdirSync(d, { recursive: true });
  const file = join(d, sentinel ? 'sentinel.conf' : 'redis.conf');
  writeOnce(file, [
    `port ${port}`,
    'bind 127.0.0.1',
    'protected-mode yes',
    `dir ${d}`,
    'daemonize yes',
    `pidfile ${join(d, 'pid')}`,
    `logfile ${join(d, 'log')}`,
    ...conf,
  ]);
  if (isRunning(join(d, 'pid'))) return;
  const r = spawnSync('redis-server', sentinel ? [file, '--sentinel'] : [file], { encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) throw new Error(`redis-server ${file} failed: ${r.stderr || r.stdout}`);
}

export async function startHaRedis(dir: string, ports: HaRedisPorts): Promise<void> {
  const [master, replica] = ports.servers as [number, number];
  const data = ['appendonly yes', 'save ""'];
  startServer(dir, master, data, false);
  startServer(dir, replica, [...data, `replicaof 127.0.0.1 ${master}`], false);
  for (const p of ports.servers) await waitForPort(p);
  for (const p of ports.sentinels) {
    startServer(dir, p, [
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
      `sentinel failover-timeout ${MASTER_NAME} 10000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
    ], true);
  }
  for (const p of ports.sentinels) await waitForPort(p);
  await waitForMaster(ports, 30_000);
}

/** The master's port as the Sentinels see it, once a quorum agrees and it answers as master. */
export async function waitForMaster(ports: HaRedisPorts, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await Promise.all(ports.sentinels.map((p) => sentinelMaster(p)));
    const port = seen[0];
    if (port && seen.filter((s) => s === port).length >= 2) {
      const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => {}); // a master being failed over refuses connections: asked again below
      const role = await c.connect().then(() => c.role(), () => null).finally(() => c.disconnect());
      if (role?.[0] === 'master') return port;
    }
    if (Date.now() > deadline) throw new Error(`the Sentinels agree on no Redis master after ${timeoutMs} ms`);
    await sleep(250);
  }
}

async function sentinelMaster(port: number): Promise<number | null> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    const r = (await c.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as [string, string] | null;
    return r ? Number(r[1]) : null;
  } catch {
    return null;
  } finally {
    c.disconnect();
  }
}

export async function stopHaRedis(dir: string, ports: HaRedisPorts): Promise<void> {
  for (const p of [...ports.sentinels, ...ports.servers]) await stopDaemon(join(serverDir(dir, p), 'pid'));
}

/** The pid file of the Redis server on `port` (for the failover test). */
export const redisPidFile = (dir: string, port: number) => join(serverDir(dir, port), 'pid');

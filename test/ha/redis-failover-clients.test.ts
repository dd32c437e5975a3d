import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedis } from '../../platform/redis.js';
import { freePort } from '../../scripts/stack/services.js';
import { MASTER_NAME, redisPidFile, startHaRedis, stopHaRedis, waitForMaster, type HaRedisPorts } from '../../scripts/stack/ha-redis.js';

/**
 * Issue 14 §3 (the fault suite's redis-failover row lost every alert): after the master is
 * SIGKILLed and a Sentinel promotes the replica, every Redis connection the service makes
 * (platform/redis.ts) must come back on the new master. A connection of ioredis 5 with
 * `failoverDetector` on ended for good ("Connection is closed.") when the Sentinels'
 * +switch-master reached the detector of its previous connection while it was asking the
 * Sentinels again: the detector disconnected the connector mid-attempt, and ioredis gives up on a
 * connector that fails. Many connections make the race near certain, as in a worker (a dozen).
 */

const CLIENTS = 40;
const ROUNDS = 5;
let dir: string;
let ports: HaRedisPorts;
const clients: Redis[] = [];

async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tagwatch-sentinel-clients-'));
  const p = await distinctPorts(5);
  ports = { servers: p.slice(0, 2), sentinels: p.slice(2) };
  await startHaRedis(dir, ports);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  if (ports) await stopHaRedis(dir, ports);
  rmSync(dir, { recursive: true, force: true });
});

/** The master's replica online (the killed master restarted and turned into a replica). */
async function replicaOnline(master: number): Promise<void> {
  const direct = createRedis({ REDIS_URL: `redis://127.0.0.1:${master}` });
  direct.on('error', () => undefined);
  try {
    const deadline = Date.now() + 60_000;
    while (!/^slave0:.*state=online/m.test(await direct.info('replication'))) {
      if (Date.now() > deadline) throw new Error(`no replica of ${master} online after 60 s`);
      await sleep(200);
    }
  } finally {
    direct.disconnect();
  }
}

describe('Redis connections through the Sentinels across a failover', () => {
  it('every connection of the service reaches the promoted master after the master is SIGKILLed, failover after failover', async () => {
    const sentinels = ports.sentinels.map((s) => `127.0.0.1:${s}`).join(',');
    for (let i = 0; i < CLIENTS; i++) {
      const c = createRedis({ REDIS_SENTINELS: sentinels, REDIS_MASTER_NAME: MASTER_NAME });
      c.on('error', () => undefined);
      clients.push(c);
    }
    await Promise.all(clients.map((c, i) => c.set(`k${i}`, 'before')));
    // the race depends on where each connection is in its reconnection when +switch-master
    // arrives (connections closed together move together): several failovers in a row
    for (let round = 1; round <= ROUNDS; round++) {
      const first = await waitForMaster(ports, 10_000);
      await replicaOnline(first);
      process.kill(Number(readFileSync(redisPidFile(dir, first), 'utf8').trim()), 'SIGKILL');
      const promoted = await waitForMaster(ports, 30_000);
      expect(promoted).not.toBe(first);
      // the Sentinels have published +switch-master; give every connection time to settle
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && clients.some((c) => c.status !== 'ready')) await sleep(200);
      const notReady = clients.map((c) => c.status).filter((s) => s !== 'ready');
      expect(notReady, `failover ${round}: connections not ready 20 s after the promotion: ${notReady.length} of ${CLIENTS}`).toEqual([]);
      // and each one writes to the new master
      await Promise.all(clients.map((c, i) => c.set(`k${i}`, `after ${round}`)));
      const direct = createRedis({ REDIS_URL: `redis://127.0.0.1:${promoted}` });
      try {
        expect(await direct.mget(clients.map((_, i) => `k${i}`))).toEqual(clients.map(() => `after ${round}`));
      } finally {
        direct.disconnect();
      }
      await startHaRedis(dir, ports); // the killed master back, as a replica of the promoted one
    }
  }, 300_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import mqtt, { type MqttClient } from 'mqtt';
import { migrate } from '../../platform/db.js';
import { freePort, startPostgres, stopPostgres } from '../../scripts/stack/services.js';
import { ROOT } from '../../scripts/stack.js';
import { createTestDatabase, stack, startTestBroker, startTestService, testConfig, waitFor } from '../support/env.js';

/** Publishes `n` single-reading QoS 1 messages for `devices`, spread over a few connections. */
async function publishReadings(url: string, devices: string[], n: number, baseMs: number): Promise<void> {
  const clients: MqttClient[] = await Promise.all(
    [0, 1, 2, 3].map((i) => mqtt.connectAsync(url, { clientId: `fault-pub-${i}-${Date.now()}` })),
  );
  const perClient = Math.ceil(n / clients.length);
  await Promise.all(
    clients.map(async (c, ci) => {
      const sends: Promise<unknown>[] = [];
      for (let k = ci * perClient; k < Math.min(n, (ci + 1) * perClient); k++) {
        const device = devices[k % devices.length]!;
        const ts = new Date(baseMs + k * 1000).toISOString();
        sends.push(c.publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts, battery_pct: k % 100 }), { qos: 1 }));
        if (sends.length >= 200) await Promise.all(sends.splice(0));
      }
      await Promise.all(sends);
    }),
  );
  await Promise.all(clients.map((c) => c.endAsync()));
}

async function count(pool: pg.Pool | pg.Client): Promise<{ n: number; distinct: number }> {
  const r = await pool.query<{ n: string; d: string }>(`SELECT count(*) n, count(DISTINCT (device_id, stream, ts)) d FROM readings`);
  return { n: Number(r.rows[0]!.n), distinct: Number(r.rows[0]!.d) };
}

async function registerDevices(db: pg.Pool | pg.Client, ids: string[]): Promise<void> {
  await db.query(`INSERT INTO devices (id, kind) SELECT unnest($1::text[]), 'combined'`, [ids]);
}

describe('ingest faults', () => {
  describe('the database stopped for 20 s while 5,000 readings arrive', () => {
    let pgDir: string;
    let pgPort: number;
    let broker: Awaited<ReturnType<typeof startTestBroker>>;

    beforeAll(async () => {
      pgDir = mkdtempSync(join(tmpdir(), 'tagwatch-pg-'));
      pgPort = await freePort();
      const h = await startPostgres(pgDir, pgPort);
      const c = new pg.Client({ connectionString: h.url() });
      await c.connect();
      await migrate(c);
      await c.end();
      broker = await startTestBroker();
    });

    afterAll(() => {
      stopPostgres(pgDir, 'immediate');
      rmSync(pgDir, { recursive: true, force: true });
      broker?.stop();
    });

    it('loses none, duplicates none, and the service keeps running', async () => {
      const url = `postgres://postgres@127.0.0.1:${pgPort}/tagwatch`;
      const svc = await startTestService(testConfig({ DATABASE_URL: url, MQTT_URL: broker.url }), { ingest: true });
      try {
        const devices = Array.from({ length: 50 }, (_, i) => `DBF-${i}`);
        await registerDevices(svc.rt.pool, devices);
        const base = Date.now() - 86400_000;
        await publishReadings(broker.url, devices, 500, base); // flowing before the outage
        await waitFor(async () => (await count(svc.rt.pool)).n === 500, 'first 500 readings');

        stopPostgres(pgDir, 'fast');
        const outageStart = Date.now();
        await publishReadings(broker.url, devices, 5000, base + 500_000); // broker holds them unacknowledged
        const ready = await svc.app.inject({ method: 'GET', url: '/readyz' });
        expect(ready.statusCode).toBe(503);
        expect(ready.json().checks.database).toBe(false);
        await new Promise((r) => setTimeout(r, Math.max(0, 20_000 - (Date.now() - outageStart))));
        await startPostgres(pgDir, pgPort);

        const c = await waitFor(async () => {
          const x = await count(svc.rt.pool);
          return x.n >= 5500 ? x : null;
        }, 'all 5,500 readings after the outage', 60_000, 200);
        await new Promise((r) => setTimeout(r, 1000)); // nothing more arrives later
        expect(await count(svc.rt.pool)).toEqual({ n: 5500, distinct: 5500 });
        expect(c.n).toBe(5500);
        const rej = await svc.rt.pool.query(`SELECT count(*)::int n FROM rejections`);
        expect(rej.rows[0].n).toBe(0);
        const health = await svc.app.inject({ method: 'GET', url: '/readyz' });
        expect(health.json().checks).toEqual({ database: true, redis: true, mqtt: true });
      } finally {
        await svc.stop();
      }
    }, 120_000);
  });

  describe('the ingest process killed with SIGKILL in the middle of 20,000 QoS 1 readings', () => {
    let db: Awaited<ReturnType<typeof createTestDatabase>>;
    let broker: Awaited<ReturnType<typeof startTestBroker>>;
    const children: ChildProcess[] = [];

    beforeAll(async () => {
      db = await createTestDatabase();
      broker = await startTestBroker();
    });
    afterAll(async () => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      broker?.stop();
      await db?.drop();
    });

    function startIngest(instance: string): ChildProcess {
      const s = stack();
      // node itself (not the tsx wrapper), so SIGKILL hits the process that holds the MQTT sessions
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'app/main.ts'), 'ingest'], {
        cwd: ROOT,
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          REDIS_URL: s.REDIS_URL,
          MQTT_URL: broker.url,
          JWT_SECRET: s.JWT_SECRET,
          INGEST_INSTANCE: instance,
          INGEST_CONNECTIONS: '16',
          QUEUE_PREFIX: `kill${Date.now()}`,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      return child;
    }

    /** Resolves when the child logs that its connections have subscribed. */
    function subscribed(child: ChildProcess): Promise<void> {
      return new Promise((resolve, reject) => {
        let buf = '';
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('"msg":"ingest subscribed"')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`ingest exited with ${code} before subscribing`)));
      });
    }

    it('stores every reading exactly once after a restart', async () => {
      const devices = Array.from({ length: 200 }, (_, i) => `KILL-${i}`);
      await registerDevices(db.pool, devices);
      const instance = `kill-${Date.now()}`;
      let child = startIngest(instance);
      await subscribed(child);
      const base = Date.now() - 2 * 86400_000;
      const publishing = publishReadings(broker.url, devices, 20_000, base);
      await waitFor(async () => (await count(db.pool)).n >= 4000, 'ingest under way', 60_000, 20);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const atKill = (await count(db.pool)).n;
      expect(atKill).toBeLessThan(20_000);
      await publishing; // the broker accepted everything (PUBACKed to the devices)
      child = startIngest(instance); // same sessions: the broker redelivers what was unacknowledged
      await subscribed(child);
      await waitFor(async () => (await count(db.pool)).n >= 20_000, 'all 20,000 readings', 90_000, 200);
      await new Promise((r) => setTimeout(r, 1000));
      expect(await count(db.pool)).toEqual({ n: 20_000, distinct: 20_000 });
      const rej = await db.pool.query(`SELECT count(*)::int n FROM rejections`);
      expect(rej.rows[0].n).toBe(0);
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }, 180_000);
  });
});


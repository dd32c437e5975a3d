import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, stack, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { runSimulation, type SimOptions, type Summary } from '../../sim/simulate.js';
import { planFleet } from '../../sim/model.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let options: SimOptions;
let dir: string;
const lines: string[] = [];

const count = async (sql: string, params: unknown[] = []): Promise<number> =>
  Number((await db.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true });
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  dir = mkdtempSync(join(tmpdir(), 'tagwatch-sim-'));
  const { port } = svc.app.server.address() as AddressInfo;
  options = {
    devices: 6,
    rate: 60,
    api: `http://127.0.0.1:${port}`,
    mqttUrl: broker.url,
    seed: 7,
    prefix: 'it-',
    jwtSecret: stack().JWT_SECRET,
    historyH: 3,
    credentialsFile: join(dir, 'credentials.json'),
    log: (line) => lines.push(line),
    summaryEveryMs: 500,
  };
});

afterAll(async () => {
  await svc?.stop();
  broker?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the simulator until it has published live readings (not only a backlog) and printed a summary, then stops it. */
async function simulate(): Promise<Summary> {
  const sim = await runSimulation(options);
  const live = () => sim.summary().readings.total - sim.summary().burstReadings;
  try {
    await waitFor(() => live() > 0 && lines.some((l) => /^simulate: \d+s/.test(l)), 'live readings and a summary line', 15_000);
  } finally {
    await sim.stop();
  }
  return sim.stop(); // safe twice: the same summary
}

describe('fleet simulator against the running service', () => {
  it('registers its tags, subjects and fittings over HTTP and every reading it publishes is stored, none rejected', async () => {
    const s = await simulate();
    const fleet = planFleet({ seed: 7, devices: 6, prefix: 'it-' });
    expect(s.registered).toEqual({ created: 6, reused: 0 });
    expect(s.errors).toBe(0);

    const devices = await db.pool.query(`SELECT id, kind, active FROM devices ORDER BY id`);
    expect(devices.rows).toEqual(fleet.map((d) => ({ id: d.id, kind: d.kind, active: true })));
    const subjects = await db.pool.query(`SELECT id, cohort, rag, offender_manager_ids FROM subjects ORDER BY id`);
    expect(subjects.rows).toEqual(fleet.map((d) => ({ id: d.subject.id, cohort: d.subject.cohort, rag: d.subject.rag, offender_manager_ids: d.subject.offender_manager_ids })));
    expect(await count(`SELECT count(*) n FROM assignments WHERE end_at IS NULL`)).toBe(6);
    // the MQTT passwords, shown once at registration, are kept for the next run, readable by the owner only
    expect(Object.keys(JSON.parse(readFileSync(options.credentialsFile!, 'utf8'))).sort()).toEqual(fleet.map((d) => d.id));
    expect(statSync(options.credentialsFile!).mode & 0o777).toBe(0o600);

    // the backlog of three hours went out as bursts, then live readings
    expect(s.bursts).toBeGreaterThan(0);
    expect(s.burstReadings).toBeGreaterThan(100);
    expect(s.readings.total).toBeGreaterThan(s.burstReadings);
    await waitFor(async () => (await count(`SELECT count(*) n FROM readings`)) === s.readings.total, `${s.readings.total} stored readings`);
    expect(await count(`SELECT count(*) n FROM rejections`)).toBe(0);
    for (const stream of ['gps', 'alcohol', 'status'] as const) {
      expect(await count(`SELECT count(*) n FROM readings WHERE stream = $1`, [stream])).toBe(s.readings[stream]);
    }
    // every reading belongs to the subject its tag is fitted to
    const owned = await count(
      `SELECT count(*) n FROM readings r JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND (a.end_at IS NULL OR r.ts < a.end_at)`,
    );
    expect(owned).toBe(s.readings.total);
    expect(lines.some((l) => /^simulate: \d+s \+\d+ readings/.test(l))).toBe(true);
  });

  it('reuses its registrations when run again, sending no backlog twice and still no rejections', async () => {
    const storedBefore = await count(`SELECT count(*) n FROM readings`);
    const s = await simulate();
    expect(s.registered).toEqual({ created: 0, reused: 6 });
    expect(s.burstReadings).toBe(0);
    expect(s.errors).toBe(0);
    await waitFor(async () => (await count(`SELECT count(*) n FROM readings`)) === storedBefore + s.readings.total, 'second run stored');
    expect(await count(`SELECT count(*) n FROM rejections`)).toBe(0);
    expect(await count(`SELECT count(*) n FROM devices`)).toBe(6);
  });
});

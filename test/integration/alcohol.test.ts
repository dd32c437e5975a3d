import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { DateTime } from 'luxon';
import { rollupDrift } from '../../alcohol/alcohol.repo.js';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;

/** A real recording (test/fixtures/barcrawl), its times shifted so that it ends `endsAgoMs` before now. */
function recording(name: string, endsAgoMs: number) {
  const file = fileURLToPath(new URL(`../fixtures/barcrawl/${name}.csv`, import.meta.url));
  const rows = readFileSync(file, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  const last = Date.parse(rows[rows.length - 1]![0]!);
  const shift = Date.now() - endsAgoMs - last;
  return rows.map(([ts, tac, ir, temp]) => ({ ts: new Date(Date.parse(ts!) + shift).toISOString(), tac: Number(tac), ir: Number(ir), temp_c: Number(temp) }));
}

async function api(url: string, who: Parameters<typeof authHeader> = ['admin'], method: 'GET' | 'POST' = 'GET', payload?: object) {
  return svc.app.inject({ method, url, headers: await authHeader(...who), ...(payload ? { payload } : {}) });
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true, worker: true });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'alcohol-test-publisher' });
  for (const [subject, device, cohort] of [['A-S1', 'A-D1', 'flex'], ['A-S2', 'A-D2', 'fixed']]) {
    expect((await api('/v1/devices', ['admin'], 'POST', { id: device, kind: 'alcohol' })).statusCode).toBe(201);
    expect((await api('/v1/subjects', ['admin'], 'POST', { id: subject, display_name: `Person ${subject}`, cohort, rag: 'amber', offender_manager_ids: ['om-1'] })).statusCode).toBe(201);
    const start = new Date(Date.now() - 4 * 86400_000).toISOString();
    expect((await api(`/v1/subjects/${subject}/assignments`, ['admin'], 'POST', { device_id: device, start })).statusCode).toBe(201);
  }
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

describe('alcohol end to end: a real recording through MQTT', () => {
  it('raises one drinking_event with its evidence, no tamper, and stores the days once', async () => {
    const readings = recording('BK7610', 30 * 60_000);
    // as a tag would: a few live readings, then the rest as one shuffled store-and-forward batch
    for (const r of readings.slice(0, 5)) await pub.publishAsync('tags/v1/A-D1/alcohol', JSON.stringify(r), { qos: 1 });
    await pub.publishAsync('tags/v1/A-D1/alcohol', JSON.stringify([...readings.slice(5)].reverse()), { qos: 1 });
    const alerts = await waitFor(async () => {
      const r = await db.pool.query(`SELECT type, started_at, evidence, ended_at, late FROM alerts WHERE subject_id = 'A-S1' AND type = 'drinking_event'`);
      return r.rows.length ? r.rows : null;
    }, 'the drinking event');
    expect(alerts).toHaveLength(1);
    expect(alerts[0].late).toBe(true); // proven by stored readings, received hours after their device time
    const firstPositive = readings.find((r) => r.tac >= 0.02)!;
    expect(alerts[0].started_at.getTime()).toBeGreaterThanOrEqual(Date.parse(firstPositive.ts));
    expect(alerts[0].evidence[0].summary).toMatchObject({ kind: 'drinking' });
    expect(alerts[0].evidence.length).toBeGreaterThan(3);
    const tampers = await db.pool.query(`SELECT count(*)::int n FROM alerts WHERE type = 'alcohol_tamper'`);
    expect(tampers.rows[0].n).toBe(0);
    const days = await waitFor(async () => {
      const r = await db.pool.query(`SELECT to_char(date, 'YYYY-MM-DD') d, status FROM alcohol_days WHERE subject_id = 'A-S1' AND status = 'drinking'`);
      return r.rows.length ? r.rows : null;
    }, 'drinking days');
    expect(days.length).toBeGreaterThanOrEqual(1);
    // the same readings again (a resent batch) change nothing
    await pub.publishAsync('tags/v1/A-D1/alcohol', JSON.stringify(readings.slice(0, 100)), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await db.pool.query(`SELECT count(*)::int n FROM alerts WHERE subject_id = 'A-S1' AND type = 'drinking_event'`)).rows[0].n).toBe(1);
    const dup = await db.pool.query(`SELECT date, count(*) FROM alcohol_days GROUP BY subject_id, date HAVING count(*) > 1`);
    expect(dup.rows).toEqual([]);
    // the worker kept the month counts with the days it wrote
    expect(await rollupDrift(db.pool)).toEqual([]);
    const months = await db.pool.query(
      `SELECT (SELECT sum(drinking_days)::int FROM alcohol_day_months WHERE subject_id = 'A-S1') AS months,
              (SELECT count(*)::int FROM alcohol_days WHERE subject_id = 'A-S1' AND status = 'drinking') AS days`,
    );
    expect(months.rows[0].months).toBeGreaterThanOrEqual(1);
    expect(months.rows[0].months).toBe(months.rows[0].days);
  });

  it('answers the subject sobriety endpoint for the manager and, without the id, for an analyst', async () => {
    const today = DateTime.now().setZone('Europe/London');
    const from = today.minus({ days: 3 }).toISODate()!;
    const to = today.plus({ days: 1 }).toISODate()!;
    const om = await api(`/v1/subjects/A-S1/sobriety?from=${from}&to=${to}`, ['offender_manager', 'om-1']);
    expect(om.statusCode).toBe(200);
    const body = om.json();
    expect(body.subject_id).toBe('A-S1');
    expect(body.days.map((d: { date: string }) => d.date)).toEqual([0, 1, 2, 3].map((i) => today.minus({ days: 3 - i }).toISODate()));
    expect(body.days.some((d: { status: string }) => d.status === 'drinking')).toBe(true);
    expect(body.monitored_days).toBe(body.days.filter((d: { status: string }) => d.status !== 'not_monitored').length);
    expect(body.params_versions).toHaveLength(1);
    const an = await api(`/v1/subjects/A-S1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-1']);
    expect(an.statusCode).toBe(200);
    expect(an.json().subject_id).toBeUndefined();
    expect(an.json().subject).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(JSON.stringify(an.json())).not.toContain('Person');
    expect((await api(`/v1/subjects/A-S1/sobriety?from=${from}&to=${to}`, ['offender_manager', 'om-9'])).statusCode).toBe(404);
  });

  it('answers the cohort endpoint with pseudonymous rows, stable per analyst and different across analysts', async () => {
    const from = DateTime.now().minus({ days: 5 }).toISODate()!;
    const to = DateTime.now().plus({ days: 1 }).toISODate()!;
    const a1 = (await api(`/v1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-1'])).json();
    expect(a1).toMatchObject({ cohort: 'all', subjects: 1 });
    expect(a1.rows[0]).toMatchObject({ cohort: 'flex' });
    expect(a1.rows[0].subject).not.toContain('A-S1');
    const again = (await api(`/v1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-1'])).json();
    expect(again.rows[0].subject).toBe(a1.rows[0].subject);
    const a2 = (await api(`/v1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-2'])).json();
    expect(a2.rows[0].subject).not.toBe(a1.rows[0].subject);
    const fixed = (await api(`/v1/sobriety?cohort=fixed&from=${from}&to=${to}`, ['analyst', 'an-1'])).json();
    expect(fixed).toMatchObject({ cohort: 'fixed', subjects: 0, sober_days: 0, monitored_days: 0, rate: null, ci95: null });
    expect((await api(`/v1/sobriety?from=${from}&to=${to}`, ['offender_manager', 'om-1'])).statusCode).toBe(403);
  });

  it.each([
    ['/v1/sobriety?from=2026-02-01&to=2026-01-01', /`from` must be before `to`/],
    ['/v1/sobriety?from=2019-01-01&to=2026-01-01', /at most 5 years/],
    ['/v1/sobriety?cohort=loose&from=2026-01-01&to=2026-02-01', /cohort/],
    ['/v1/sobriety?from=2026-13-01&to=2026-02-01', /from/],
  ])('refuses %s with 400 and the reason', async (url, reason) => {
    const r = await api(url, ['analyst', 'an-1']);
    expect(r.statusCode).toBe(400);
    expect(r.json().detail).toMatch(reason);
  });

  it('exposes the analysts’ SQL views without names', async () => {
    const v = await db.pool.query(`SELECT * FROM sober_days LIMIT 1`);
    expect(Object.keys(v.rows[0])).toEqual(['subject_ref', 'cohort', 'date', 'status', 'covered_minutes', 'params_version']);
    const r = await db.pool.query(`SELECT cohort, sober_days, monitored_days FROM sober_day_rates WHERE cohort = 'flex'`);
    expect(r.rows.length).toBeGreaterThanOrEqual(1);
  });
});

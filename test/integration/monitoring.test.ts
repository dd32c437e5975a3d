import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';

// Monitoring integrity (issue 14 §4) on the real stack. Four subjects fitted 30 hours before the
// current UTC hour, readings relative to the wall clock (so every assertion holds whatever minute
// the test runs at):
//   M-OK   combined tag: a fix every 5 minutes, an alcohol reading every 30, up to now: no gap
//   M-GPS  gps tag: status every 5 minutes up to now, fixes stop at the start of the last full hour
//   M-ALC  alcohol tag: a reading every 2 hours (thinned out below the 20 h monitored-day rule)
//   M-OTH  gps tag of another manager's caseload, no fix for 2 hours
//   M-NONE no device fitted
//   M-MID  gps tag fitted from 30 minutes into the first hour for 90 minutes, fixes every 5 minutes for 4 hours around it

const H = 3600_000;
const now0 = Date.now();
const cur = Math.floor(now0 / H) * H;
const fitAt = new Date(cur - 30 * H);
const iso = (t: number) => new Date(t).toISOString();

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

async function series(device: string, stream: string, from: number, to: number, everyMin: number) {
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, tac, ir, temp_c, battery_pct, data)
     SELECT $1, $2, t, 51.5, -0.12, 8, 0, 1.1, 32, 80, '{}'::jsonb FROM generate_series($3::timestamptz, $4::timestamptz, make_interval(mins => $5)) AS t`,
    [device, stream, new Date(from), new Date(to), everyMin],
  );
}

const om1 = () => authHeader('offender_manager', 'om-m1');
const sup = async () => ({ ...(await authHeader('supervisor', 'sup-m')), 'x-tagwatch-reason': 'monitoring integrity test' });
const get = async (url: string, headers: Record<string, string>) => svc.app.inject({ method: 'GET', url, headers });

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  for (const [id, om] of [['M-OK', 'om-m1'], ['M-GPS', 'om-m1'], ['M-ALC', 'om-m1'], ['M-OTH', 'om-m2'], ['M-NONE', 'om-m1']]) {
    await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'flex', 'amber', $2)`, [id, [om]]);
  }
  for (const [subject, device, kind] of [['M-OK', 'M-D-OK', 'combined'], ['M-GPS', 'M-D-GPS', 'gps'], ['M-ALC', 'M-D-ALC', 'alcohol'], ['M-OTH', 'M-D-OTH', 'gps']]) {
    await db.pool.query(`INSERT INTO devices (id, kind) VALUES ($1, $2)`, [device, kind]);
    await db.pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ($1, $2, $3)`, [subject, device, fitAt]);
  }
  const start = fitAt.getTime();
  await series('M-D-OK', 'gps', start, now0, 5);
  await series('M-D-OK', 'alcohol', start, now0, 30);
  await series('M-D-GPS', 'status', start, now0, 5);
  await series('M-D-GPS', 'gps', start, cur - H - 60_000, 5);
  await series('M-D-ALC', 'alcohol', start, now0, 120);
  await series('M-D-OTH', 'gps', start, cur - 2 * H - 60_000, 5);
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('M-MID', 'M-MID', 'free', 'green', '{om-m3}')`);
  await db.pool.query(`INSERT INTO devices (id, kind) VALUES ('M-D-MID', 'gps')`);
  await db.pool.query(`INSERT INTO assignments (subject_id, device_id, start_at, end_at) VALUES ('M-MID', 'M-D-MID', $1, $2)`, [new Date(start + H / 2), new Date(start + 2 * H)]);
  await series('M-D-MID', 'gps', start - H, start + 3 * H - 60_000, 5);
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('GET /v1/subjects/{id}/monitoring', () => {
  it('shows the hour without fixes of a tag that still reports, and the subject in a GPS gap now', async () => {
    const res = await get(`/v1/subjects/M-GPS/monitoring?from=${iso(cur - 3 * H)}&to=${iso(cur)}`, await om1());
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.cadence).toEqual({ gps_fix_minutes: 15, alcohol_reading_minutes: 30, gap_ratio: 0.5, covered_hours_per_day: 20 });
    expect(body.hours.map((h: { hour: string; gps: unknown; alcohol: unknown }) => [h.hour, h.gps, h.alcohol])).toEqual([
      [iso(cur - 3 * H), { fitted_minutes: 60, expected: 4, received: 12 }, null],
      [iso(cur - 2 * H), { fitted_minutes: 60, expected: 4, received: 12 }, null],
      [iso(cur - H), { fitted_minutes: 60, expected: 4, received: 0 }, null],
    ]);
    expect(body.monitoring_gap.gap).toBe(true);
    expect(body.monitoring_gap.gps).toMatchObject({ gap: true, reasons: ['below_expected_last_hour'], judged: { received: 0 } });
    expect(body.monitoring_gap.alcohol.gap).toBe(false);
  });

  it('counts only readings inside the fitting: prorates the hour it starts in mid-hour, nothing before or after it', async () => {
    const body = (await get(`/v1/subjects/M-MID/monitoring?from=${iso(fitAt.getTime() - H)}&to=${iso(fitAt.getTime() + 3 * H)}`, await sup())).json();
    expect(body.hours.map((h: { gps: unknown }) => h.gps)).toEqual([null, { fitted_minutes: 30, expected: 2, received: 6 }, { fitted_minutes: 60, expected: 4, received: 12 }, null]);
  });

  it('shows alcohol readings thinned out below the monitored-day rule as a gap', async () => {
    const body = (await get(`/v1/subjects/M-ALC/monitoring?from=${iso(cur - 4 * H)}&to=${iso(cur)}`, await om1())).json();
    expect(body.hours.map((h: { alcohol: { received: number } }) => h.alcohol.received).reduce((a: number, b: number) => a + b, 0)).toBe(2);
    expect(body.hours.every((h: { gps: unknown; alcohol: { expected: number } }) => h.gps === null && h.alcohol.expected === 2)).toBe(true);
    expect(body.monitoring_gap.alcohol.gap).toBe(true);
    expect(body.monitoring_gap.alcohol.reasons).toContain('alcohol_coverage_below_day_rule');
    expect([body.monitoring_gap.alcohol.fitted_hours_24h, body.monitoring_gap.alcohol.covered_hours_24h]).toEqual([24, 12]);
  });

  it('shows no gap for a subject monitored as expected', async () => {
    const body = (await get(`/v1/subjects/M-OK/monitoring?from=${iso(cur - 2 * H)}&to=${iso(cur)}`, await om1())).json();
    expect(body.hours.map((h: { gps: unknown; alcohol: unknown }) => [h.gps, h.alcohol])).toEqual([
      [{ fitted_minutes: 60, expected: 4, received: 12 }, { fitted_minutes: 60, expected: 2, received: 2 }],
      [{ fitted_minutes: 60, expected: 4, received: 12 }, { fitted_minutes: 60, expected: 2, received: 2 }],
    ]);
    expect(body.monitoring_gap.gap).toBe(false);
  });

  it('answers a subject without a device with empty hours and no gap', async () => {
    const body = (await get(`/v1/subjects/M-NONE/monitoring?from=${iso(cur - 2 * H)}&to=${iso(cur)}`, await om1())).json();
    expect(body.hours).toEqual([
      { hour: iso(cur - 2 * H), local: expect.any(String), gps: null, alcohol: null },
      { hour: iso(cur - H), local: expect.any(String), gps: null, alcohol: null },
    ]);
    expect(body.monitoring_gap).toEqual({ gap: false, gps: { gap: false, reasons: [], judged: null }, alcohol: { gap: false, reasons: [], judged: null, fitted_hours_24h: 0, covered_hours_24h: 0 } });
  });

  it('keeps other caseloads out (404), asks a supervisor for a reason, bounds the period, and audits each read', async () => {
    const url = `/v1/subjects/M-GPS/monitoring?from=${iso(cur - 2 * H)}&to=${iso(cur)}`;
    expect((await get(url, await authHeader('offender_manager', 'om-m2'))).statusCode).toBe(404);
    expect((await get(url, await authHeader('analyst', 'an-m'))).statusCode).toBe(403);
    const noReason = await get(url, await authHeader('supervisor', 'sup-m'));
    expect(noReason.statusCode).toBe(400);
    expect(noReason.json().detail).toMatch(/X-Tagwatch-Reason/);
    expect((await get(url, await sup())).statusCode).toBe(200);
    const long = await get(`/v1/subjects/M-GPS/monitoring?from=${iso(cur - 32 * 24 * H)}&to=${iso(cur)}`, await om1());
    expect([long.statusCode, long.json().detail]).toEqual([400, 'a period covers at most 31 days']);
    expect((await get(`/v1/subjects/M-GPS/monitoring?from=${iso(cur)}&to=${iso(cur)}`, await om1())).statusCode).toBe(400);
    const rows = await db.pool.query(`SELECT actor, role, reason, detail->>'gap' AS gap FROM audit_log WHERE action = 'monitoring.read' AND subject_id = 'M-GPS' AND actor IN ('sup-m', 'om-m2') ORDER BY id`);
    expect(rows.rows).toEqual([{ actor: 'sup-m', role: 'supervisor', reason: 'monitoring integrity test', gap: 'true' }]);
  });
});

describe('configured cadence', () => {
  it('expects what MONITORING_GPS_FIX_MINUTES says (a fix every 5 minutes: 12 an hour)', async () => {
    const other = await startTestService(testConfig({ DATABASE_URL: db.url, MONITORING_GPS_FIX_MINUTES: '5', MONITORING_ALCOHOL_READING_MINUTES: '20' }));
    try {
      const res = await other.app.inject({ method: 'GET', url: `/v1/subjects/M-OK/monitoring?from=${iso(cur - 2 * H)}&to=${iso(cur - H)}`, headers: await om1() });
      expect(res.json().cadence).toMatchObject({ gps_fix_minutes: 5, alcohol_reading_minutes: 20 });
      expect(res.json().hours[0]).toMatchObject({ gps: { expected: 12, received: 12 }, alcohol: { expected: 3, received: 2 } });
    } finally {
      await other.stop();
    }
  });
});

describe('GET /v1/monitoring/gaps', () => {
  const ids = (body: { subjects: Array<{ subject_id: string }> }) => body.subjects.map((s) => s.subject_id);

  it('lists a manager the subjects of their caseload in a gap now, and audits one row per subject shown', async () => {
    const res = await get('/v1/monitoring/gaps', await om1());
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(ids(body)).toEqual(['M-ALC', 'M-GPS']);
    expect(body.fitted_subjects).toBe(3);
    expect(body.subjects[1].monitoring_gap.gps.gap).toBe(true);
    const rows = await db.pool.query(`SELECT subject_id, detail->>'gps' AS gps, detail->>'alcohol' AS alcohol FROM audit_log WHERE action = 'monitoring.gaps' AND actor = 'om-m1' ORDER BY subject_id`);
    expect(rows.rows).toEqual([
      { subject_id: 'M-ALC', gps: 'false', alcohol: 'true' },
      { subject_id: 'M-GPS', gps: 'true', alcohol: 'false' },
    ]);
  });

  it('lists a supervisor every subject in a gap, without needing a reason', async () => {
    const body = (await get('/v1/monitoring/gaps', await authHeader('supervisor', 'sup-list'))).json();
    expect(ids(body)).toEqual(['M-ALC', 'M-GPS', 'M-OTH']);
    expect(body.fitted_subjects).toBe(4);
  });

  it('is refused to analysts and admins', async () => {
    expect((await get('/v1/monitoring/gaps', await authHeader('analyst', 'an-m'))).statusCode).toBe(403);
    expect((await get('/v1/monitoring/gaps', await authHeader('admin', 'ad-m'))).statusCode).toBe(403);
  });
});

describe('/metrics', () => {
  it('counts the subjects in a gap per stream, with no subject, device or person id', async () => {
    const text = (await get('/metrics', await authHeader('supervisor', 'sup-metrics'))).body;
    const lines = text.split('\n').filter((l) => l.startsWith('tagwatch_monitoring_'));
    expect(lines).toEqual(['tagwatch_monitoring_gap_subjects{stream="gps"} 2', 'tagwatch_monitoring_gap_subjects{stream="alcohol"} 1', 'tagwatch_monitoring_fitted_subjects 4']);
    for (const id of ['M-OK', 'M-GPS', 'M-ALC', 'M-OTH', 'M-D-', 'om-m1', 'om-m2']) expect(text).not.toContain(id);
  });
});

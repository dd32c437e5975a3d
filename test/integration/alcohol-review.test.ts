import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { DEFAULT_PARAMS, paramsVersion } from '../../alcohol/params.js';
import { evaluateDeviceAlcohol } from '../../alcohol/evaluate.job.js';
import { cohortTotalsFromDays, rollupDrift } from '../../alcohol/alcohol.repo.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { withTransaction } from '../../platform/db.js';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';

// Contract 1.1 §4 (review), §5 (each drinking event and tamper its own alert), §6 (POST
// /v1/alerts/{id}/review). One subject, V-S1 (Europe/London, November: local days are UTC days),
// worn from 1 to 8 November 2026 with a reading every 30 minutes:
//   1 Nov sober · 2 Nov drinking (confirmed) · 3 Nov a 150-minute obstruction on a day with exactly
//   20 h covered (not confirmed) · 4 Nov drinking (not confirmed) · 5 Nov sober · 6 Nov two
//   drinking events one evening (the first not confirmed, the second pending) · 7 Nov sober.

const H = 3600_000;
const DAY0 = Date.parse('2026-11-01T00:00:00Z');
const at = (day: number, hour: number) => DAY0 + (day - 1) * 24 * H + hour * H;
const PERIOD = 'from=2026-11-01&to=2026-11-08';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let managerSvc: TestService;

function readings() {
  const out: Array<{ ts: number; tac: number; ir: number }> = [];
  const inRange = (t: number, day: number, from: number, to: number) => t >= at(day, from) && t <= at(day, to);
  for (let t = DAY0; t <= at(8, 0); t += H / 2) {
    if (t > at(3, 0) && t < at(3, 4)) continue; // 3 Nov: no readings 00:30 to 03:30, so 4 h not covered
    let tac = 0;
    let ir = 1.1;
    if (inRange(t, 2, 19, 22) || inRange(t, 4, 19, 22) || inRange(t, 6, 18, 19.5) || inRange(t, 6, 21, 22.5)) tac = 0.06;
    if (inRange(t, 3, 10, 12.5)) ir = 0.3;
    out.push({ ts: t, tac, ir });
  }
  return out;
}

const deps = () => ({ pool: db.pool, logger: createLogger('silent'), metrics: createMetrics(), params: DEFAULT_PARAMS });
const evaluate = () => evaluateDeviceAlcohol(deps(), 'V-D1', DAY0, at(8, 0.2));

async function alerts(): Promise<Array<{ id: string; type: string; started_at: Date; review_status: string }>> {
  return (await db.pool.query(`SELECT id, type, started_at, review_status FROM alerts WHERE subject_id = 'V-S1' ORDER BY started_at`)).rows;
}

async function review(id: string, decision: string, note: string, who: Parameters<typeof authHeader> = ['supervisor', 'sup-1'], service = svc) {
  return service.app.inject({ method: 'POST', url: `/v1/alerts/${id}/review`, headers: await authHeader(...who), payload: { decision, note } });
}

const sobriety = async () => (await svc.app.inject({ method: 'GET', url: `/v1/subjects/V-S1/sobriety?${PERIOD}`, headers: { ...(await authHeader('supervisor', 'sup-1')), 'x-tagwatch-reason': 'alcohol review test' } })).json();

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  managerSvc = await startTestService(testConfig({ DATABASE_URL: db.url, ALCOHOL_REVIEW_ROLE: 'offender_manager' }));
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('V-S1', 'Person V', 'flex', 'amber', '{om-1}')`);
  await db.pool.query(`INSERT INTO devices (id, kind) VALUES ('V-D1', 'alcohol')`);
  await db.pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('V-S1', 'V-D1', $1)`, [new Date(DAY0)]);
  const r = readings();
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, tac, temp_c, ir, data)
     SELECT 'V-D1', 'alcohol', t, tac, 32, ir, '{}'::jsonb FROM unnest($1::timestamptz[], $2::float8[], $3::float8[]) AS x(t, tac, ir)`,
    [r.map((x) => new Date(x.ts)), r.map((x) => x.tac), r.map((x) => x.ir)],
  );
  await evaluate();
});

afterAll(async () => {
  await managerSvc?.stop();
  await svc?.stop();
  await db?.drop();
});

describe('alcohol review', () => {
  it('raises each drinking event and tamper as its own alert, pending review; two events on one evening are two alerts', async () => {
    const a = await alerts();
    expect(a.map((x) => [x.type, x.started_at.toISOString(), x.review_status])).toEqual([
      ['drinking_event', '2026-11-02T19:00:00.000Z', 'pending'],
      ['alcohol_tamper', '2026-11-03T10:00:00.000Z', 'pending'],
      ['drinking_event', '2026-11-04T19:00:00.000Z', 'pending'],
      ['drinking_event', '2026-11-06T18:00:00.000Z', 'pending'],
      ['drinking_event', '2026-11-06T21:00:00.000Z', 'pending'],
    ]);
    // what a reviewer (and an evidence pack) needs: the curve, the rule that fired, the parameter version
    const evidence = (await db.pool.query(`SELECT evidence FROM alerts WHERE id = $1`, [a[1]!.id])).rows[0].evidence;
    expect(evidence[0].summary).toMatchObject({ kind: 'obstruction', baseline_ir: 1.1, baseline_temp_c: 32, start: '2026-11-03T10:00:00.000Z', end: '2026-11-03T12:30:00.000Z', params_version: paramsVersion(DEFAULT_PARAMS) });
    expect(evidence.slice(1).map((r: { ir: number }) => r.ir)).toEqual([0.3, 0.3, 0.3, 0.3, 0.3, 0.3]);
    const body = await sobriety();
    expect(body.days.map((d: { status: string }) => d.status)).toEqual(['sober', 'drinking', 'tamper', 'drinking', 'sober', 'drinking', 'sober']);
    expect(body.days.map((d: { reviewed_status: string }) => d.reviewed_status)).toEqual(body.days.map((d: { status: string }) => d.status));
    expect(body).toMatchObject({ sober_days: 3, monitored_days: 7, reviewed_sober_days: 3, reviewed_monitored_days: 7, pending_events: 5 });
  });

  it('refuses roles other than the review role (403), other types (409), unknown alerts (404) and a missing decision or note (400)', async () => {
    const [first] = await alerts();
    for (const who of [['offender_manager', 'om-1'], ['analyst', 'an-1'], ['admin', 'admin-1']] as Array<Parameters<typeof authHeader>>) {
      expect((await review(first!.id, 'confirmed', 'looks real', who)).statusCode, who[0]).toBe(403);
    }
    const battery = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'low_battery', subjectId: 'V-S1', deviceId: 'V-D1', zoneId: null, startedAt: new Date(at(7, 9)), late: false, evidence: [] }));
    if (battery.outcome !== 'raised') throw new Error('low_battery not raised');
    const other = await review(battery.alert.id, 'confirmed', 'n/a');
    expect(other.statusCode).toBe(409);
    expect(other.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(other.json().detail).toMatch(/only drinking_event and alcohol_tamper alerts are reviewed/);
    expect((await review('00000000-0000-4000-8000-000000000000', 'confirmed', 'x')).statusCode).toBe(404);
    expect((await review(first!.id, 'maybe', 'x')).statusCode).toBe(400);
    expect((await review(first!.id, 'confirmed', '')).statusCode).toBe(400);
    expect((await alerts()).map((x) => x.review_status)).toEqual(['pending', 'pending', 'pending', 'pending', 'pending', null]);
    await db.pool.query(`DELETE FROM alerts WHERE id = $1`, [battery.alert.id]);
    const doc = (await svc.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const op = doc.paths['/v1/alerts/{id}/review'].post;
    expect(op).toMatchObject({ operationId: 'reviewAlert', tags: ['alerts'] });
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '409']));
    expect(op.responses['409'].content['application/problem+json'].schema).toBeTruthy();
  });

  it('gives automatic and reviewed figures side by side: one day confirmed, one not confirmed, one pending, a not-confirmed tamper on 20 h', async () => {
    const [d2, t3, d4, d6a] = await alerts();
    const confirmed = await review(d2!.id, 'confirmed', 'steady rise and fall over three hours');
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json().review).toMatchObject({ status: 'confirmed', by: 'sup-1', note: 'steady rise and fall over three hours' });
    expect(Date.parse(confirmed.json().review.at)).toBeGreaterThan(Date.now() - 60_000);
    expect((await review(t3!.id, 'not_confirmed', 'strap refitted by the officer at the visit')).statusCode).toBe(200);
    expect((await review(d4!.id, 'not_confirmed', 'lab test negative')).statusCode).toBe(200);
    expect((await review(d6a!.id, 'not_confirmed', 'hand sanitiser at work')).statusCode).toBe(200);

    const body = await sobriety();
    expect(body.days.map((d: { date: string; status: string; reviewed_status: string; pending_events: number }) => [d.date, d.status, d.reviewed_status, d.pending_events])).toEqual([
      ['2026-11-01', 'sober', 'sober', 0],
      ['2026-11-02', 'drinking', 'drinking', 0],
      ['2026-11-03', 'tamper', 'sober', 0],
      ['2026-11-04', 'drinking', 'sober', 0],
      ['2026-11-05', 'sober', 'sober', 0],
      ['2026-11-06', 'drinking', 'drinking', 1],
      ['2026-11-07', 'sober', 'sober', 0],
    ]);
    expect(body).toMatchObject({ sober_days: 3, monitored_days: 7, rate: 3 / 7, reviewed_sober_days: 5, reviewed_monitored_days: 7, reviewed_rate: 5 / 7, pending_events: 1 });
    expect(body.ci95[0]).toBeCloseTo(0.1582, 4);
    expect(body.reviewed_ci95[0]).toBeCloseTo(0.359, 3);
    const covered = await db.pool.query(`SELECT covered_minutes, events, reviews, readings_received_to FROM alcohol_days WHERE subject_id = 'V-S1' AND date = '2026-11-03'`);
    expect(covered.rows[0]).toMatchObject({ covered_minutes: 1200, reviews: { [t3!.id]: 'not_confirmed' } });
    expect(covered.rows[0].events).toEqual([{ kind: 'tamper', start: at(3, 10), end: at(3, 12.5) }]);
    expect(covered.rows[0].readings_received_to).toBeInstanceOf(Date);

    // the cohort route (edge days from alcohol_days, and a whole month from the rollup), the day table and the views agree
    for (const period of [PERIOD, 'from=2026-11-01&to=2026-12-01', 'from=2026-10-15&to=2027-01-01']) {
      const cohort = (await svc.app.inject({ method: 'GET', url: `/v1/sobriety?cohort=flex&${period}`, headers: await authHeader('analyst', 'an-1') })).json();
      expect(cohort).toMatchObject({ subjects: 1, sober_days: 3, monitored_days: 7, reviewed_sober_days: 5, reviewed_monitored_days: 7, reviewed_rate: 5 / 7, pending_events: 1 });
      expect(cohort.rows[0]).toMatchObject({ cohort: 'flex', sober_days: 3, reviewed_sober_days: 5, pending_events: 1 });
      expect(cohort.reviewed_ci95).toEqual(body.reviewed_ci95);
    }
    // 8 Nov (one reading at midnight) is a stored, not monitored day outside PERIOD
    expect(await cohortTotalsFromDays(db.pool, 'flex', '2026-11-01', '2026-11-08')).toEqual([
      { subject_id: 'V-S1', cohort: 'flex', sober_days: 3, monitored_days: 7, reviewed_sober_days: 5, reviewed_monitored_days: 7, pending_events: 1 },
    ]);
    expect(await rollupDrift(db.pool)).toEqual([]);
    const view = await db.pool.query(`SELECT to_char(date, 'YYYY-MM-DD') d, status, reviewed_status, pending_events FROM sober_days WHERE date < '2026-11-08' ORDER BY date`);
    expect(view.rows.map((r) => [r.d, r.status, r.reviewed_status, r.pending_events])).toEqual(body.days.map((d: { date: string; status: string; reviewed_status: string; pending_events: number }) => [d.date, d.status, d.reviewed_status, d.pending_events]));
    const rates = await db.pool.query(`SELECT sober_days::int, monitored_days::int, rate::float8, reviewed_sober_days::int, reviewed_monitored_days::int, reviewed_rate::float8, pending_events::int FROM sober_day_rates WHERE cohort = 'flex'`);
    expect(rates.rows).toEqual([{ sober_days: 3, monitored_days: 7, rate: 0.4286, reviewed_sober_days: 5, reviewed_monitored_days: 7, reviewed_rate: 0.7143, pending_events: 1 }]);
  });

  it('keeps every review when the period is evaluated again, and raises nothing twice', async () => {
    const before = await sobriety();
    const alertsBefore = await alerts();
    await evaluate();
    await evaluateDeviceAlcohol(deps(), 'V-D1', at(4, 0), at(8, 0.2));
    expect(await alerts()).toEqual(alertsBefore);
    expect(await sobriety()).toEqual(before);
    expect(await rollupDrift(db.pool)).toEqual([]);
  });

  it('lets a second review change the decision, keeping both in the history and the audit log', async () => {
    const d4 = (await alerts())[2]!;
    const again = await review(d4.id, 'confirmed', 'the lab result was for another sample');
    expect(again.statusCode).toBe(200);
    expect(again.json().review).toMatchObject({ status: 'confirmed', by: 'sup-1', note: 'the lab result was for another sample' });
    expect(again.json().history.filter((h: { action: string }) => h.action === 'reviewed').map((h: { actor: string; note: string }) => [h.actor, h.note])).toEqual([
      ['sup-1', 'not_confirmed: lab test negative'],
      ['sup-1', 'confirmed: the lab result was for another sample'],
    ]);
    const body = await sobriety();
    expect(body.days[3]).toMatchObject({ date: '2026-11-04', status: 'drinking', reviewed_status: 'drinking' });
    expect(body).toMatchObject({ reviewed_sober_days: 4, pending_events: 1 });
    const audit = await db.pool.query(`SELECT actor, role, detail->>'alert_id' AS alert_id, detail->>'decision' AS decision FROM audit_log WHERE action = 'alert.review' ORDER BY id`);
    const ids = (await alerts()).map((x) => x.id);
    expect(audit.rows).toEqual([
      { actor: 'sup-1', role: 'supervisor', alert_id: ids[0], decision: 'confirmed' },
      { actor: 'sup-1', role: 'supervisor', alert_id: ids[1], decision: 'not_confirmed' },
      { actor: 'sup-1', role: 'supervisor', alert_id: ids[2], decision: 'not_confirmed' },
      { actor: 'sup-1', role: 'supervisor', alert_id: ids[3], decision: 'not_confirmed' },
      { actor: 'sup-1', role: 'supervisor', alert_id: ids[2], decision: 'confirmed' },
    ]);
  });

  it('resolving as a false alarm reviews only when the resolver holds the review role; a manager reviewer sees only their caseload', async () => {
    const d6b = (await alerts())[4]!;
    const om1 = ['offender_manager', 'om-1'] as Parameters<typeof authHeader>;
    // review role supervisor: the manager's false alarm is their workflow, not a review
    const resolved = await svc.app.inject({ method: 'POST', url: `/v1/alerts/${d6b.id}/resolve`, headers: await authHeader(...om1), payload: { note: 'says it was mouthwash', false_alarm: true } });
    expect(resolved.statusCode).toBe(200);
    expect(resolved.json()).toMatchObject({ status: 'resolved', false_alarm: true, review: { status: 'pending', by: null } });
    expect((await sobriety()).pending_events).toBe(1);
    // review role offender_manager: a manager outside the caseload cannot see it; the supervisor may no longer review
    expect((await review(d6b.id, 'not_confirmed', 'mouthwash', ['offender_manager', 'om-9'], managerSvc)).statusCode).toBe(404);
    expect((await review(d6b.id, 'not_confirmed', 'mouthwash', ['supervisor', 'sup-1'], managerSvc)).statusCode).toBe(403);
    // resolving (another, still open alert) as a false alarm by the manager holding the role is a not_confirmed review
    const d2 = (await alerts())[0]!;
    const r = await managerSvc.app.inject({ method: 'POST', url: `/v1/alerts/${d2.id}/resolve`, headers: await authHeader(...om1), payload: { note: 'prescribed medicine with alcohol', false_alarm: true } });
    expect(r.statusCode).toBe(200);
    expect(r.json().review).toMatchObject({ status: 'not_confirmed', by: 'om-1', note: 'prescribed medicine with alcohol' });
    const body = await sobriety();
    expect(body.days[1]).toMatchObject({ date: '2026-11-02', status: 'drinking', reviewed_status: 'sober' });
    expect(body.reviewed_sober_days).toBe(5);
    // resolving an alert already resolved is refused and reviews nothing
    const twice = await managerSvc.app.inject({ method: 'POST', url: `/v1/alerts/${d6b.id}/resolve`, headers: await authHeader(...om1), payload: { note: 'again', false_alarm: true } });
    expect(twice.statusCode).toBe(409);
    expect((await sobriety()).pending_events).toBe(1);
    const ok = await review(d6b.id, 'confirmed', 'mouthwash does not last three hours', om1, managerSvc);
    expect(ok.statusCode).toBe(200);
    expect((await sobriety()).pending_events).toBe(0);
    const audit = await db.pool.query(`SELECT actor, role, detail->>'decision' AS decision, detail->>'via' AS via FROM audit_log WHERE action = 'alert.review' AND actor = 'om-1' ORDER BY id`);
    expect(audit.rows).toEqual([
      { actor: 'om-1', role: 'offender_manager', decision: 'not_confirmed', via: 'resolve' },
      { actor: 'om-1', role: 'offender_manager', decision: 'confirmed', via: null },
    ]);
    expect(await rollupDrift(db.pool)).toEqual([]);
  });
});

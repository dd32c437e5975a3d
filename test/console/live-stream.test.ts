import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { authHeader, createTestDatabase, startTestService, testConfig, token, waitFor, type TestService } from '../support/env.js';
import { openStream } from '../support/sse.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { ensureParams, saveDays } from '../../alcohol/alcohol.repo.js';
import { createSession, purgeExpiredConsoleState, IDLE_MS } from '../../console/sessions.repo.js';
import { keepReason } from '../../console/live.repo.js';
import { monthGrid, monthOf, rateInWords } from '../../console/calendar.js';
import { Queue } from 'bullmq';
import { CONSOLE_HOUSEKEEPING_MS, MAINTENANCE_QUEUE } from '../../app/worker.part.js';
import { ConsoleClient } from './support.js';

/** The live inbox's stream and rows, the sober-day calendar and session housekeeping, over HTTP. */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let base: string;

async function admin(url: string, payload: object) {
  const res = await svc.app.inject({ method: 'POST', url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

async function newAlert(subjectId: string, type: 'case_tamper' | 'strap_tamper' | 'low_battery' | 'no_signal' | 'no_gps_fix' = 'case_tamper'): Promise<string> {
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type, subjectId, deviceId: null, zoneId: null, startedAt: new Date(), late: false, evidence: [] }));
  if (r.outcome !== 'raised') throw new Error(`not raised: ${r.outcome}`);
  return r.alert.id;
}

/** A signed-in console session of `role`/`userId` as a cookie header. */
async function sessionCookie(role: 'offender_manager' | 'supervisor', userId: string): Promise<{ client: ConsoleClient; cookie: string }> {
  const client = new ConsoleClient(svc.app);
  await client.signIn(role, userId);
  return { client, cookie: `tagwatch_console=${client.cookies.get('tagwatch_console')}` };
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true', SSE_MAX_PER_USER: '2' }), { feed: true, worker: true });
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  await admin('/v1/subjects', { id: 'V-S1', display_name: 'Vera Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await admin('/v1/subjects', { id: 'V-S2', display_name: 'Walt Other', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-2'] });
  await admin('/v1/subjects', { id: 'V-S3', display_name: 'Xena Drinker', cohort: 'fixed', rag: 'amber', offender_manager_ids: ['om-1'] });
  await admin('/v1/devices', { id: 'V-A1', kind: 'alcohol' });
  await admin('/v1/subjects/V-S3/assignments', { device_id: 'V-A1', start: DateTime.now().minus({ days: 70 }).toISO()! });
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('GET /console/alerts/stream: the API stream, authenticated by the session', () => {
  it('gives the same events as GET /v1/alerts/stream, filtered to the caseload, and audits it', async () => {
    const { cookie } = await sessionCookie('offender_manager', 'om-1');
    const live = await openStream(`${base}/console/alerts/stream`, { cookie });
    const api = await openStream(`${base}/v1/alerts/stream`, await token('offender_manager', 'om-1'));
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/text\/event-stream/);
    const mine = await newAlert('V-S1');
    await newAlert('V-S2'); // another manager's: on neither stream
    const last = await newAlert('V-S1', 'no_signal');
    await waitFor(() => live.events.some((e) => e.data.alert.id === last) && api.events.some((e) => e.data.alert.id === last), 'both streams');
    expect(live.events.map((e) => e.data)).toEqual(api.events.map((e) => e.data));
    expect(live.events.map((e) => e.data.alert.id)).toEqual([mine, last]);
    await live.close();
    await api.close();
    const audit = await db.pool.query(`SELECT detail FROM audit_log WHERE actor = 'om-1' AND action = 'alerts.stream' ORDER BY id`);
    expect(audit.rows.map((r) => r.detail)).toEqual([{ resume_from: null, via: 'console.inbox' }, { resume_from: null }]);
  });

  it('replays after Last-Event-ID like the API stream', async () => {
    const { cookie } = await sessionCookie('offender_manager', 'om-1');
    const first = await openStream(`${base}/console/alerts/stream`, { cookie });
    const a = await newAlert('V-S1', 'strap_tamper');
    await waitFor(() => first.events.find((e) => e.data.alert.id === a), 'the first alert');
    const resumeAt = first.events.at(-1)!.id;
    await first.close();
    const b = await newAlert('V-S1', 'low_battery');
    const again = await openStream(`${base}/console/alerts/stream`, { cookie }, resumeAt);
    await waitFor(() => again.events.find((e) => e.data.alert.id === b), 'the missed alert replayed');
    // the resume point may repeat an event (alerts/stream.ts), never lose one, nor replay older ones
    const ids = again.events.map((e) => e.data.alert.id);
    expect(ids).toContain(b);
    expect(ids.every((id) => id === a || id === b)).toBe(true);
    await again.close();
  });

  it('counts console and API streams together against SSE_MAX_PER_USER (429 with Retry-After)', async () => {
    const { cookie } = await sessionCookie('offender_manager', 'om-limit');
    const one = await openStream(`${base}/console/alerts/stream`, { cookie });
    const two = await openStream(`${base}/v1/alerts/stream`, await token('offender_manager', 'om-limit'));
    const three = await openStream(`${base}/console/alerts/stream`, { cookie });
    expect([one.status, two.status, three.status]).toEqual([200, 200, 429]);
    expect(three.headers.get('retry-after')).toBe('30');
    await Promise.all([one.close(), two.close(), three.close()]);
  });

  it('ends the stream with `event: expired` when the session ends', async () => {
    const { cookie } = await sessionCookie('offender_manager', 'om-expiring');
    await db.pool.query(`UPDATE console_sessions SET expires_at = now() + interval '1500 milliseconds' WHERE user_id = 'om-expiring'`);
    const s = await openStream(`${base}/console/alerts/stream`, { cookie });
    expect(s.status).toBe(200);
    await waitFor(() => s.ended, 'the stream to end', 10_000);
    expect(s.notices.map((n) => n.event)).toEqual(['expired']);
    expect(s.notices[0]!.data.reason).toMatch(/session ended/);
  });
});

describe('GET /console/alerts/:id/row: one inbox row for the live inbox', () => {
  it("renders a caseload alert's row (audited) and nothing of another manager's", async () => {
    const { client } = await sessionCookie('offender_manager', 'om-1');
    const mine = await newAlert('V-S1', 'no_gps_fix');
    const other = await newAlert('V-S2', 'strap_tamper');
    const row = await client.get(`/console/alerts/${mine}/row`);
    expect(row.statusCode).toBe(200);
    expect(row.body.trim()).toMatch(/^<tr /);
    expect(row.body).toContain('data-label="No GPS fix, Vera Example"');
    expect(row.body).toContain('data-severity="medium"');
    expect(row.body).toContain('Acknowledge');
    expect((await client.get(`/console/alerts/${other}/row`)).statusCode).toBe(404);
    expect((await client.get(`/console/alerts/not-a-uuid/row`)).statusCode).toBe(404);
    const audit = await db.pool.query(`SELECT subject_id, detail FROM audit_log WHERE actor = 'om-1' AND action = 'alerts.read' AND detail->>'via' = 'console.inbox.live'`);
    expect(audit.rows).toEqual([{ subject_id: 'V-S1', detail: { alert_ids: [mine], count: 1, via: 'console.inbox.live' } }]);
  });

  it('the inbox page carries the live region and its script, and still lists without JavaScript', async () => {
    const { client } = await sessionCookie('offender_manager', 'om-1');
    const page = await client.get('/console/alerts');
    expect(page.body).toMatch(/role="status" aria-live="polite"[^>]*id="inbox-announce"/);
    expect(page.body).toContain('src="/console/assets/js/inbox-live.js"');
    expect(page.body).toContain('Vera Example');
    expect(page.body).not.toContain('Walt Other');
  });
});

describe('the sober-day calendar on the subject page', () => {
  it('shows a month grid with a status label on each day, a text legend and the rate with its 95 % CI, audited like the API', async () => {
    const tz = 'Europe/London';
    const month = DateTime.now().setZone(tz).startOf('month').minus({ months: 1 });
    const version = await ensureParams(db.pool, DEFAULT_PARAMS);
    const statuses = ['sober', 'sober', 'drinking', 'sober', 'tamper', 'not_monitored', 'sober'] as const;
    const days = statuses.map((status, i) => ({ date: month.plus({ days: i }).toISODate()!, status, covered_minutes: status === 'not_monitored' ? 300 : 1440, drinking_events: status === 'drinking' ? 1 : 0, tampers: status === 'tamper' ? 1 : 0, reviewed_status: status, pending_events: 0, events: [], reviews: {} }));
    await saveDays(db.pool, 'V-S3', days as never, version);
    const { client } = await sessionCookie('offender_manager', 'om-1');
    const url = `/console/subjects/V-S3?month=${month.toFormat('yyyy-MM')}`;
    const page = await client.get(url);
    expect(page.statusCode).toBe(200);
    const section = /<section class="console-calendar"[\s\S]*?<\/section>/.exec(page.body)?.[0] ?? '';
    expect(section).toContain(`Sober days: ${month.toFormat('LLLL yyyy')}`);
    expect(section).toMatch(/<table class="govuk-table console-calendar__grid">/);
    const cell = (date: string) => new RegExp(`data-date="${date}" data-status="([a-z_]+)">\\s*<span class="console-day__number">(\\d+)</span>\\s*<span class="console-day__status" aria-hidden="true">([^<]*)</span><span class="govuk-visually-hidden">([^<]+)</span>`).exec(section);
    expect(cell(days[0]!.date)?.slice(1)).toEqual(['sober', '1', 'S', 'Sober']);
    expect(cell(days[2]!.date)?.slice(1)).toEqual(['drinking', '3', 'D', 'Drinking']);
    expect(cell(days[4]!.date)?.slice(1)).toEqual(['tamper', '5', 'T', 'Tamper']);
    // 4 sober of 6 monitored: Wilson 95 % interval 30 % to 90 %
    expect(section).toContain('4 sober days of 6 monitored days: 67 % (95 % confidence interval 30 % to 90 %).');
    expect(section).toMatch(/<dt[^>]*>S<\/dt><dd>Sober<\/dd>/);
    expect(section).toMatch(/<dt[^>]*>D<\/dt><dd>Drinking<\/dd>/);
    expect(section).toContain(`href="?month=${month.minus({ months: 1 }).toFormat('yyyy-MM')}#calendar-heading"`);
    expect(section).toContain(`href="?month=${month.plus({ months: 1 }).toFormat('yyyy-MM')}#calendar-heading"`);
    // the API gives the same figures for the same period
    const api = await svc.app.inject({ method: 'GET', url: `/v1/subjects/V-S3/sobriety?from=${month.toISODate()}&to=${month.plus({ months: 1 }).toISODate()}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(api.json()).toMatchObject({ sober_days: 4, monitored_days: 6 });
    const audit = await db.pool.query(`SELECT subject_id, detail FROM audit_log WHERE actor = 'om-1' AND action = 'sobriety.read' ORDER BY id`);
    expect(audit.rows[0]).toEqual({ subject_id: 'V-S3', detail: { from: month.toISODate(), to: month.plus({ months: 1 }).toISODate(), via: 'console.subject' } });
  });

  it('is left out for a person with no alcohol tag, and never goes past this month', async () => {
    const { client } = await sessionCookie('offender_manager', 'om-1');
    expect((await client.get('/console/subjects/V-S1')).body).not.toContain('console-calendar');
    const future = await client.get(`/console/subjects/V-S3?month=2999-01`);
    expect(future.body).toContain(`Sober days: ${DateTime.now().setZone('Europe/London').toFormat('LLLL yyyy')}`);
    expect(future.body).not.toContain('Next month');
  });

  it('builds the grid Monday first with blank cells around the month (pure)', () => {
    const m = monthOf('2026-02', 'Europe/London', new Date('2026-12-03T12:00:00Z'));
    const empty = { days: [], sober_days: 0, monitored_days: 0, rate: null, ci95: null, reviewed_sober_days: 0, reviewed_monitored_days: 0, reviewed_rate: null, reviewed_ci95: null, pending_events: 0, params_versions: [] };
    const g = monthGrid(m, '2026-12-03', empty);
    // 1 Feb 2026 is a Sunday: six blanks first; 28 days end on a Saturday
    expect(g.weeks[0]!.slice(0, 6)).toEqual([null, null, null, null, null, null]);
    expect(g.weeks[0]![6]).toMatchObject({ day: 1, status: 'no_tag' });
    expect(g.weeks.flat().filter(Boolean)).toHaveLength(28);
    expect(g.rateText).toBe('No monitored days this month, so no sober-day rate.');
    expect(rateInWords(1, 1, 1, [0.21, 1])).toBe('1 sober day of 1 monitored day: 100 % (95 % confidence interval 21 % to 100 %).');
    expect(monthOf('2026-13', 'Europe/London', new Date('2026-12-03T12:00:00Z')).toFormat('yyyy-MM')).toBe('2026-12');
  });
});

describe('console housekeeping', () => {
  it('purges expired sessions (absolute and idle), old sign-ins and stated reasons, keeping live ones', async () => {
    const now = new Date();
    const live = await createSession(db.pool, { id: 'hk-live', role: 'offender_manager' }, now);
    await createSession(db.pool, { id: 'hk-old', role: 'offender_manager' }, now);
    await createSession(db.pool, { id: 'hk-idle', role: 'offender_manager' }, now);
    await db.pool.query(`UPDATE console_sessions SET expires_at = now() - interval '1 minute' WHERE user_id = 'hk-old'`);
    await db.pool.query(`UPDATE console_sessions SET last_seen_at = $1 WHERE user_id = 'hk-idle'`, [new Date(now.getTime() - IDLE_MS - 60_000)]);
    await db.pool.query(`INSERT INTO console_sign_ins (token_hash, state, nonce, verifier, created_at) VALUES ('hk-signin-old', 's', 'n', 'v', now() - interval '11 minutes'), ('hk-signin-new', 's', 'n', 'v', now())`);
    const key = (await db.pool.query(`SELECT token_hash FROM console_sessions WHERE user_id = 'hk-live'`)).rows[0].token_hash as string;
    await keepReason(db.pool, key, 'subject', 'V-S1', 'old reason', new Date(now.getTime() - 16 * 60_000));
    await keepReason(db.pool, key, 'alert', '00000000-0000-4000-8000-000000000000', 'fresh reason', now);
    expect(live.token).toBeTruthy();
    const purged = await purgeExpiredConsoleState(db.pool, new Date());
    expect(purged.sessions).toBeGreaterThanOrEqual(2);
    const users = (await db.pool.query(`SELECT user_id FROM console_sessions WHERE user_id LIKE 'hk-%'`)).rows.map((r) => r.user_id);
    expect(users).toEqual(['hk-live']);
    expect((await db.pool.query(`SELECT token_hash FROM console_sign_ins WHERE token_hash LIKE 'hk-%'`)).rows.map((r) => r.token_hash)).toEqual(['hk-signin-new']);
    expect((await db.pool.query(`SELECT reason FROM console_reasons WHERE session_hash = $1`, [key])).rows.map((r) => r.reason)).toEqual(['fresh reason']);
  });

  it("runs on the worker's maintenance scheduler every 5 minutes, not only at sign-in", async () => {
    const queue = new Queue(MAINTENANCE_QUEUE, { connection: svc.rt.redis, prefix: svc.rt.config.QUEUE_PREFIX });
    try {
      const schedulers = await queue.getJobSchedulers();
      expect(schedulers.find((s) => s.key === 'console-housekeeping')).toMatchObject({ name: 'console-housekeeping', every: CONSOLE_HOUSEKEEPING_MS });
      expect(CONSOLE_HOUSEKEEPING_MS).toBe(5 * 60_000);
      // the worker's job (as the scheduler adds it) purges
      await createSession(db.pool, { id: 'hk-worker', role: 'supervisor' }, new Date());
      await db.pool.query(`UPDATE console_sessions SET expires_at = now() - interval '1 minute' WHERE user_id = 'hk-worker'`);
      const job = await queue.add('console-housekeeping', {});
      await waitFor(async () => (await db.pool.query(`SELECT 1 FROM console_sessions WHERE user_id = 'hk-worker'`)).rowCount === 0, 'the worker to purge the expired session', 20_000, 100);
      await waitFor(async () => (await queue.getJob(job.id!))?.returnvalue, 'the job result');
      expect((await queue.getJob(job.id!))?.returnvalue).toMatchObject({ sessions: expect.any(Number), sign_ins: expect.any(Number), reasons: expect.any(Number) });
    } finally {
      await queue.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { ConsoleClient, csrfOf } from './support.js';

/** The supervisor's reason form as POST-redirect-GET (reasons kept per session and record for 15 minutes). */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let alertId: string;

async function admin(url: string, payload: object) {
  const res = await svc.app.inject({ method: 'POST', url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  await admin('/v1/subjects', { id: 'L-S1', display_name: 'Lena Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'no_signal', subjectId: 'L-S1', deviceId: null, zoneId: null, startedAt: new Date(Date.now() - 3600_000), late: false, evidence: [] }));
  alertId = (r as { alert: { id: string } }).alert.id;
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null }>;

describe("the supervisor's reason form is POST-redirect-GET", () => {
  it.each([
    ['alert', () => `/console/alerts/${alertId}`, 'alert.read', 'No signal from the tag'],
    ['subject', () => '/console/subjects/L-S1', 'subject.read', 'Lena Example'],
  ])('redirects to the %s page, which a reload shows again and audits with the reason each time', async (_kind, url, action, shows) => {
    const sup = `sup-prg-${action}`;
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', sup);
    const ask = await c.get(url());
    expect(ask.body).toContain('Why are you opening this record?');
    const posted = await c.post(`${url()}/open`, { _csrf: csrfOf(ask.body), reason: 'MAPPA review of the red cases' });
    expect(posted.statusCode).toBe(303);
    expect(posted.headers.location).toBe(url());
    for (let i = 0; i < 2; i++) {
      const page = await c.get(url()); // the redirect, then a reload
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain(shows);
      expect(page.body).not.toContain('Why are you opening this record?');
    }
    expect(await auditRows(sup, action)).toEqual([
      expect.objectContaining({ subject_id: 'L-S1', reason: 'MAPPA review of the red cases' }),
      expect.objectContaining({ subject_id: 'L-S1', reason: 'MAPPA review of the red cases' }),
    ]);
  });

  it('keeps a reason to the session that gave it: another session (even of the same user) is asked again', async () => {
    const a = new ConsoleClient(svc.app);
    await a.signIn('supervisor', 'sup-replay');
    const ask = await a.get(`/console/alerts/${alertId}`);
    expect((await a.post(`/console/alerts/${alertId}/open`, { _csrf: csrfOf(ask.body), reason: 'escalation review' })).statusCode).toBe(303);
    const b = new ConsoleClient(svc.app);
    await b.signIn('supervisor', 'sup-replay');
    const other = await b.get(`/console/alerts/${alertId}`);
    expect(other.body).toContain('Why are you opening this record?');
    // and not to another record of the same session
    expect((await a.get('/console/subjects/L-S1')).body).toContain('Why are you opening this record?');
    expect(await auditRows('sup-replay', 'alert.read')).toEqual([]);
  });

  it('asks again once the reason is older than 15 minutes, and a bad reason still gets the error summary', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-old');
    const ask = await c.get('/console/subjects/L-S1');
    const bad = await c.post('/console/subjects/L-S1/open', { _csrf: csrfOf(ask.body), reason: 'x' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('govuk-error-summary');
    expect((await c.post('/console/subjects/L-S1/open', { _csrf: csrfOf(ask.body), reason: 'weekly review' })).statusCode).toBe(303);
    await db.pool.query(`UPDATE console_reasons SET expires_at = now() - interval '1 second'`);
    expect((await c.get('/console/subjects/L-S1')).body).toContain('Why are you opening this record?');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { consoleSettings } from '../../console/settings.js';
import { ConsoleClient, csrfOf } from './support.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
const alerts: Record<string, string> = {};
const T0 = Date.now() - 3 * 3600_000;

async function admin(method: 'POST', url: string, payload: object) {
  const res = await svc.app.inject({ method, url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

async function raise(key: string, type: 'exclusion_breach' | 'low_battery' | 'strap_tamper' | 'no_signal', subjectId: string, deviceId: string, startedAt: Date, late = false, evidence: unknown[] = []) {
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type, subjectId, deviceId, zoneId: null, startedAt, late, evidence: evidence as never }));
  alerts[key] = (r as { alert: { id: string } }).alert.id;
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  await admin('POST', '/v1/subjects', { id: 'C-S1', display_name: 'Alice Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await admin('POST', '/v1/subjects', { id: 'C-S2', display_name: 'Bob Example', cohort: 'flex', rag: 'green', offender_manager_ids: ['om-1'] });
  await admin('POST', '/v1/subjects', { id: 'C-S3', display_name: 'Carol Other', cohort: 'free', rag: 'amber', offender_manager_ids: ['om-2'] });
  await admin('POST', '/v1/devices', { id: 'C-D1', kind: 'gps' });
  await admin('POST', '/v1/subjects/C-S1/assignments', { device_id: 'C-D1', start: new Date(T0 - 3600_000).toISOString() });
  // two fixes of a breach: the second reached the service 20 minutes after it was taken
  const fixes = [
    { ts: new Date(T0).toISOString(), lat: 52.95, lon: -1.15, accuracy_m: 12, received: new Date(T0 + 5_000) },
    { ts: new Date(T0 + 60_000).toISOString(), lat: 52.951, lon: -1.151, accuracy_m: 35, received: new Date(T0 + 21 * 60_000) },
  ];
  for (const f of fixes) {
    await db.pool.query(`INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) VALUES ('C-D1', 'gps', $1, $2, $3, $4, $5, '{}')`, [f.ts, f.received, f.lat, f.lon, f.accuracy_m]);
  }
  await db.pool.query(`INSERT INTO device_health (device_id, last_ts, last_received_at, battery_pct) VALUES ('C-D1', $1, $1, 64)`, [new Date(T0 + 60_000)]);
  await raise('breach', 'exclusion_breach', 'C-S1', 'C-D1', new Date(T0), true, fixes.map(({ received: _r, ...f }) => ({ ...f, class: 'inside' })));
  await raise('battery', 'low_battery', 'C-S1', 'C-D1', new Date(T0 + 3600_000));
  await raise('strap', 'strap_tamper', 'C-S2', 'C-D1', new Date(T0 + 7200_000));
  await raise('other', 'no_signal', 'C-S3', 'C-D1', new Date(T0 + 60_000));
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null; detail: Record<string, unknown> }>;

describe('console sign-in and sessions', () => {
  it('sends a request without a session to the sign-in page and accepts no bearer token', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/console/caseload', headers: await authHeader('offender_manager', 'om-1') });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/console/sign-in');
    const post = await svc.app.inject({ method: 'POST', url: `/console/alerts/${alerts.battery}/acknowledge`, headers: await authHeader('offender_manager', 'om-1'), payload: {} });
    expect(post.statusCode).toBe(401);
  });

  it('signs in through the development page with an httpOnly, SameSite=Lax session cookie (not Secure on loopback http)', async () => {
    const c = new ConsoleClient(svc.app);
    const res = await c.signIn('offender_manager', 'om-1');
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/console');
    const set = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]).find((h) => h.startsWith('tagwatch_console='))!;
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Lax/);
    expect(set).not.toMatch(/Secure/);
    expect((await c.get('/console')).headers.location).toBe('/console/caseload');
    // the session is server-side: the table holds a hash, never the cookie's token
    const token = c.cookies.get('tagwatch_console')!;
    const rows = (await db.pool.query(`SELECT token_hash, user_id, role FROM console_sessions`)).rows;
    expect(rows.some((r) => r.user_id === 'om-1' && r.role === 'offender_manager')).toBe(true);
    expect(rows.some((r) => r.token_hash === token)).toBe(false);
  });

  it('refuses the sign-in form without its CSRF token, and bad input with an error summary', async () => {
    const c = new ConsoleClient(svc.app);
    await c.get('/console/sign-in/dev');
    const forged = await c.post('/console/sign-in/dev', { _csrf: 'x'.repeat(32), role: 'supervisor', user_id: 'evil' });
    expect(forged.statusCode).toBe(403);
    expect(c.cookies.has('tagwatch_console')).toBe(false);
    const page = await c.get('/console/sign-in/dev');
    const bad = await c.post('/console/sign-in/dev', { _csrf: csrfOf(page.body), role: 'king', user_id: '' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('govuk-error-summary');
    expect(bad.body).toContain('Select a role');
  });

  it('ends the session at sign-out (with its CSRF token): the old cookie no longer works', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const token = c.cookies.get('tagwatch_console')!;
    const page = await c.get('/console/caseload');
    expect((await c.post('/console/sign-out', {})).statusCode).toBe(403); // no token: refused, still signed in
    expect((await c.get('/console/caseload')).statusCode).toBe(200);
    const out = await c.post('/console/sign-out', { _csrf: csrfOf(page.body) });
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe('/console/sign-in?signed_out=1');
    const replay = await svc.app.inject({ method: 'GET', url: '/console/caseload', headers: { cookie: `tagwatch_console=${token}` } });
    expect(replay.statusCode).toBe(303);
    expect(replay.headers.location).toBe('/console/sign-in');
  });

  it('ends a session idle for more than 8 hours', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-idle');
    expect((await c.get('/console/caseload')).statusCode).toBe(200);
    await db.pool.query(`UPDATE console_sessions SET last_seen_at = now() - interval '8 hours 1 minute' WHERE user_id = 'sup-idle'`);
    expect((await c.get('/console/caseload')).statusCode).toBe(303);
  });

  it('does not let the session cookie reach the API: /v1 stays bearer-only', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-1');
    expect((await c.get('/v1/subjects')).statusCode).toBe(401);
  });
});

describe('console pages', () => {
  it('shows a manager only their caseload, with RAG, cohort, device and open alerts by severity, and audits it', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const res = await c.get('/console/caseload');
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Alice Example');
    expect(res.body).toContain('Bob Example');
    expect(res.body).not.toContain('Carol Other');
    expect(res.body).toContain('C-D1');
    expect(res.body).toMatch(/1 high, 1 low/);
    expect(res.body).toContain('64%'); // the fitted device's battery
    expect(res.body).toContain('Unknown'); // Bob has no device
    expect(res.body).toContain('Red');
    const rows = await auditRows('om-1', 'subject.list');
    expect(rows.map((r) => r.subject_id).sort()).toEqual(expect.arrayContaining(['C-S1', 'C-S2']));
    expect(rows.map((r) => r.subject_id)).not.toContain('C-S3');
  });

  it('shows a supervisor everyone', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-1');
    const res = await c.get('/console/caseload');
    expect(res.body).toContain('Carol Other');
    expect(res.body).toContain('Alice Example');
  });

  it("answers a manager opening another manager's subject or alert with a 404 page", async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const subject = await c.get('/console/subjects/C-S3');
    expect(subject.statusCode).toBe(404);
    expect(subject.headers['content-type']).toMatch(/text\/html/);
    expect(subject.body).toContain('Page not found');
    expect(subject.body).not.toContain('Carol');
    expect((await c.get(`/console/alerts/${alerts.other}`)).statusCode).toBe(404);
    expect((await c.get('/console/no-such-page')).statusCode).toBe(404);
  });

  it('lists open alerts of the caseload most severe first, then newest, with acknowledge forms', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const res = await c.get('/console/alerts');
    expect(res.statusCode).toBe(200);
    const order = [...res.body.matchAll(/href="\/console\/alerts\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    // high: the strap tamper (newer) before the breach; then the low battery; never om-2's alert
    expect(order).toEqual([alerts.strap, alerts.breach, alerts.battery]);
    expect(res.body).toContain('/acknowledge');
    expect(res.body).toContain('Late');
  });

  it('shows the alert page: evidence table with device time, received time and accuracy, late in words, history', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const res = await c.get(`/console/alerts/${alerts.breach}`);
    expect(res.statusCode).toBe(200);
    const table = /<table class="govuk-table" data-testid="evidence">[\s\S]*?<\/table>/.exec(res.body)![0];
    expect(table).toContain('Device time');
    expect(table).toContain('Received');
    expect(table).toContain('>35<');
    expect((table.match(/<tr class="govuk-table__row">/g) ?? []).length).toBe(3); // header + 2 fixes
    expect(table).not.toContain('Not stored');
    expect(res.body).toContain('This alert was raised late');
    expect(res.body).toContain('more than 15 minutes');
    expect(res.body).toMatch(/data-testid="history"[\s\S]*Raised/);
    const rows = await auditRows('om-1', 'alert.read');
    expect(rows.some((r) => r.subject_id === 'C-S1' && r.detail.alert_id === alerts.breach)).toBe(true);
  });

  it('refuses an acknowledgement without the CSRF token and changes nothing; with it, acknowledges and audits', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const page = await c.get(`/console/alerts/${alerts.battery}`);
    const forged = await c.post(`/console/alerts/${alerts.battery}/acknowledge`, { note: 'forged' });
    expect(forged.statusCode).toBe(403);
    const wrong = await c.post(`/console/alerts/${alerts.battery}/acknowledge`, { _csrf: 'A'.repeat(43), note: 'forged' });
    expect(wrong.statusCode).toBe(403);
    const api = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${alerts.battery}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(api.json().status).toBe('open');

    const ok = await c.post(`/console/alerts/${alerts.battery}/acknowledge`, { _csrf: csrfOf(page.body), note: 'called the person' });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe(`/console/alerts/${alerts.battery}`);
    const after = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${alerts.battery}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(after.json()).toMatchObject({ status: 'acknowledged', acknowledged_by: 'om-1' });
    expect((await auditRows('om-1', 'alert.acknowledge')).some((r) => r.detail.alert_id === alerts.battery)).toBe(true);
    const again = await c.post(`/console/alerts/${alerts.battery}/acknowledge`, { _csrf: csrfOf(page.body) });
    expect(again.statusCode).toBe(409);
  });

  it('resolves an alert as a false alarm from the alert page form (no JavaScript)', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const page = await c.get(`/console/alerts/${alerts.strap}`);
    expect(page.body).toContain(`action="/console/alerts/${alerts.strap}/resolve"`);
    const res = await c.post(`/console/alerts/${alerts.strap}/resolve`, { _csrf: csrfOf(page.body), note: 'strap replaced', false_alarm: 'yes' });
    expect(res.statusCode).toBe(303);
    const after = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${alerts.strap}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(after.json()).toMatchObject({ status: 'resolved', false_alarm: true, resolved_by: 'om-1' });
    expect((await auditRows('om-1', 'alert.resolve')).some((r) => r.detail.alert_id === alerts.strap)).toBe(true);
  });

  it('asks a supervisor why before showing one person, and keeps the reason in the audit row', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-2');
    const ask = await c.get(`/console/alerts/${alerts.other}`);
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toContain('Why are you opening this record?');
    expect(ask.body).not.toContain('data-testid="evidence"');
    expect(await auditRows('sup-2', 'alert.read')).toEqual([]);
    const short = await c.post(`/console/alerts/${alerts.other}/open`, { _csrf: csrfOf(ask.body), reason: 'x' });
    expect(short.statusCode).toBe(400);
    expect(short.body).toContain('govuk-error-summary');
    const shown = await c.post(`/console/alerts/${alerts.other}/open`, { _csrf: csrfOf(ask.body), reason: 'escalated alert: MAPPA review' });
    expect(shown.statusCode).toBe(200);
    expect(shown.body).toContain('No signal from the tag');
    expect(await auditRows('sup-2', 'alert.read')).toEqual([expect.objectContaining({ subject_id: 'C-S3', reason: 'escalated alert: MAPPA review' })]);
    const subject = await c.post('/console/subjects/C-S3/open', { _csrf: csrfOf(ask.body), reason: 'weekly review of red cases' });
    expect(subject.body).toContain('Carol Other');
    expect(await auditRows('sup-2', 'subject.read')).toEqual([expect.objectContaining({ subject_id: 'C-S3', reason: 'weekly review of red cases' })]);
    // acknowledging is the manager's: a supervisor's form post is refused
    expect((await c.post(`/console/alerts/${alerts.other}/acknowledge`, { _csrf: csrfOf(ask.body) })).statusCode).toBe(403);
  });

  it('gives pages a strict content security policy and requests nothing from outside the service', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    for (const url of ['/console/caseload', '/console/alerts', `/console/alerts/${alerts.breach}`, '/console/subjects/C-S1', '/console/sign-in', '/console/sign-in/dev']) {
      const res = await c.get(url);
      expect(res.statusCode, url).toBe(200);
      const csp = res.headers['content-security-policy'] as string;
      expect(csp, url).toMatch(/default-src 'self'/);
      expect(csp, url).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9+/=]+';/);
      expect(csp, url).not.toMatch(/unsafe-inline|https?:/);
      expect(res.headers['cache-control'], url).toBe('no-store');
      for (const m of res.body.matchAll(/(?:src|href|action)="([^"]*)"/g)) expect(m[1], `${url}: ${m[0]}`).toMatch(/^(\/(?!\/)|#|$)/); // same origin (an empty href is this page)
      const nonce = /'nonce-([^']+)'/.exec(csp)![1];
      // every inline script carries the nonce; JSON data blocks (map.njk mapData) are not executed
      for (const m of res.body.matchAll(/<script(?![^>]*\ssrc=)(?![^>]*type="application\/json")[^>]*>/g)) expect(m[0]).toContain(`nonce="${nonce}"`);
    }
  });

  it('serves GOV.UK and MoJ Frontend assets from the service, with their font and image paths rewritten', async () => {
    const css = await svc.app.inject({ method: 'GET', url: '/console/assets/govuk-frontend.min.css' });
    expect(css.statusCode).toBe(200);
    expect(css.body).toContain('url(/console/assets/govuk/fonts/');
    expect(css.body).not.toMatch(/url\(\/assets\//);
    const font = /url\((\/console\/assets\/govuk\/fonts\/[^)]+\.woff2)\)/.exec(css.body)![1]!;
    expect((await svc.app.inject({ method: 'GET', url: font })).statusCode).toBe(200);
    expect((await svc.app.inject({ method: 'GET', url: '/console/assets/moj-frontend.min.css' })).statusCode).toBe(200);
    expect((await svc.app.inject({ method: 'GET', url: '/console/assets/govuk-frontend.min.js' })).statusCode).toBe(200);
    expect((await svc.app.inject({ method: 'GET', url: '/console/assets/console.js' })).statusCode).toBe(200);
    for (const bad of ['/console/assets/govuk/..%2F..%2F..%2Fpackage.json', '/console/assets/govuk/../../package.json', '/console/assets/nothing.js']) {
      const res = await svc.app.inject({ method: 'GET', url: bad });
      expect([403, 404], bad).toContain(res.statusCode);
      expect(res.body, bad).not.toContain('"version"');
    }
  });
});

describe('the development sign-in exists only when allowed', () => {
  it('is refused (the service does not start) with OIDC_ISSUER set or a listener off loopback', () => {
    expect(() => consoleSettings(testConfig({ DEV_SIGN_IN: 'true', OIDC_ISSUER: 'https://idp.example.test' }))).toThrow(/OIDC_ISSUER/);
    expect(() => consoleSettings(testConfig({ DEV_SIGN_IN: 'true', HOST: '0.0.0.0' }))).toThrow(/loopback/);
    expect(() => consoleSettings(testConfig({ DEV_SIGN_IN: 'true', HOST: '10.1.2.3' }))).toThrow(/loopback/);
    expect(consoleSettings(testConfig({ DEV_SIGN_IN: 'true', HOST: '::1' })).devSignIn).toBe(true);
    expect(consoleSettings(testConfig({ HOST: '0.0.0.0' }))).toEqual({ devSignIn: false, secureCookie: true, oidc: null, mapTiles: null });
    expect(consoleSettings(testConfig({ CONSOLE_URL: 'https://console.example.test' })).secureCookie).toBe(true);
  });

  it('has no development sign-in page without DEV_SIGN_IN=true', async () => {
    const other = await startTestService(testConfig({ DATABASE_URL: db.url }));
    try {
      expect((await other.app.inject({ method: 'GET', url: '/console/sign-in/dev' })).statusCode).toBe(404);
      expect((await other.app.inject({ method: 'POST', url: '/console/sign-in/dev', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'role=admin&user_id=x' })).statusCode).toBe(404);
      const page = await other.app.inject({ method: 'GET', url: '/console/sign-in' });
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toContain('/console/sign-in/dev');
    } finally {
      await other.stop();
    }
  });
});

describe('caseload search, filter and sort (no JavaScript: a GET form)', () => {
  it('searches by name or id, filters by RAG and sorts, within the caseload only', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const names = async (query: string) => [...(await c.get(`/console/caseload${query}`)).body.matchAll(/href="\/console\/subjects\/([^"]+)"/g)].map((m) => m[1]);
    expect(await names('')).toEqual(['C-S1', 'C-S2']); // red before green
    expect(await names('?q=bob')).toEqual(['C-S2']);
    expect(await names('?q=c-s1')).toEqual(['C-S1']);
    expect(await names('?q=carol')).toEqual([]); // om-2's: never found
    expect(await names('?rag=green')).toEqual(['C-S2']);
    expect(await names('?sort=id&rag=')).toEqual(['C-S1', 'C-S2']);
    expect(await names('?sort=nonsense&rag=purple')).toEqual(['C-S1', 'C-S2']); // unknown values: the defaults
    const page = await c.get('/console/caseload?q=%27%3B%20DROP%20TABLE%20subjects%3B%20--');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Nobody in your caseload matches');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, type TestBroker, type TestService } from '../support/env.js';
import { decryptSecret, parseSecretsKey } from '../../alerts/secrets.js';
import { ConsoleClient, csrfOf } from './support.js';

/**
 * The admin pages (issue 11 §7) without JavaScript: every form posted as a browser does, the API
 * (bearer tokens) checked for the result, the broker for the device's password.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: TestBroker;
let svc: TestService;
let admin: ConsoleClient;

const api = async (method: 'GET' | 'POST', url: string, role: 'admin' | 'offender_manager' = 'admin', sub?: string, payload?: object) => {
  const res = await svc.app.inject({ method, url, headers: await authHeader(role, sub), ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> & { items?: Array<Record<string, unknown>> } };
};
const auditRows = async (action: string, actor = 'adm-1') =>
  (await db.pool.query(`SELECT subject_id, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; detail: Record<string, unknown> }>;
/** The error summary's entries: [link target, text]. */
const summary = (html: string) => {
  const box = /<div class="govuk-error-summary"[\s\S]*?<\/ul>/.exec(html)?.[0] ?? '';
  return [...box.matchAll(/<a href="(#[\w-]+)"[^>]*>([^<]+)<\/a>/g)].map((m) => [m[1], m[2]!.trim()]);
};
const secretOf = (html: string) => /id="(?:mqtt-password|webhook-secret)"[^>]*value="([^"]+)"/.exec(html)?.[1];

/** Connects to the broker as a device; resolves with whether the broker accepted the password. */
function connects(id: string, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = mqtt.connect(broker.url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => c.end(true, () => resolve(true)));
    c.once('error', () => c.end(true, () => resolve(false)));
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker({ dynsec: true });
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true', MQTT_URL: broker.url, ...broker.credentials, WEBHOOK_ALLOW_PRIVATE: 'true' }));
  admin = new ConsoleClient(svc.app);
  await admin.signIn('admin', 'adm-1');
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

describe('admin pages: who may use them', () => {
  it('sends an admin from /console to the devices page, with the admin navigation', async () => {
    expect((await admin.get('/console')).headers.location).toBe('/console/admin/devices');
    const html = (await admin.get('/console/admin/devices')).body;
    for (const href of ['/console/admin/devices', '/console/admin/subjects', '/console/webhooks', '/console/admin/notifications', '/console/admin/rejections', '/console/admin/audit']) expect(html).toContain(`href="${href}"`);
  });

  it('refuses the admin pages to every other role with a 403 page, and their forms too', async () => {
    for (const role of ['offender_manager', 'supervisor', 'analyst', 'crime_analyst']) {
      const c = new ConsoleClient(svc.app);
      await c.signIn(role, `${role}-9`);
      for (const url of ['/console/admin/devices', '/console/admin/devices/new', '/console/admin/subjects', '/console/admin/rejections', '/console/admin/audit', '/console/admin/notifications']) {
        expect((await c.get(url)).statusCode, `${role} ${url}`).toBe(403);
      }
      const home = await c.get('/console');
      const csrf = csrfOf((home.statusCode === 303 ? await c.get(home.headers.location as string) : home).body);
      const post = await c.post('/console/admin/devices', { _csrf: csrf, id: `NOPE-${role}`, kind: 'gps' });
      expect(post.statusCode).toBe(403);
    }
    expect((await api('GET', '/v1/devices/NOPE-offender_manager')).status).toBe(404);
  });
});

describe('devices', () => {
  let password = '';

  it('refuses a registration without the CSRF token, or with a wrong one, and registers nothing', async () => {
    expect((await admin.post('/console/admin/devices', { id: 'ADM-D0', kind: 'gps' })).statusCode).toBe(403);
    expect((await admin.post('/console/admin/devices', { _csrf: 'x'.repeat(43), id: 'ADM-D0', kind: 'gps' })).statusCode).toBe(403);
    expect((await api('GET', '/v1/devices/ADM-D0')).status).toBe(404);
  });

  it('shows the API’s validation errors in the error summary, linked to their fields, keeping what was typed', async () => {
    const form = await admin.get('/console/admin/devices/new');
    const res = await admin.post('/console/admin/devices', { _csrf: csrfOf(form.body), id: 'a b', kind: '' });
    expect(res.statusCode).toBe(400);
    expect(summary(res.body)).toEqual([
      ['#id', 'Enter a device ID of 3 to 64 letters, digits, hyphens or underscores (the tag serial)'],
      ['#kind', 'Select the kind of device'],
    ]);
    expect(res.body).toContain('value="a b"');
    expect(res.body).toMatch(/<title>Error: /);
  });

  it('registers a device: the MQTT password is shown once (no-store), works at the broker, and is never shown again', async () => {
    const form = await admin.get('/console/admin/devices/new');
    const res = await admin.post('/console/admin/devices', { _csrf: csrfOf(form.body), id: 'ADM-D1', kind: 'combined' });
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    password = secretOf(res.body) ?? '';
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(res.body).toMatch(/<input[^>]*id="mqtt-password"[^>]*readonly/);
    expect(res.body).toContain('only time the MQTT password is shown');
    expect(res.body).toContain('src="/console/assets/js/admin-copy.js"');
    // the API and the broker agree
    expect((await api('GET', '/v1/devices/ADM-D1')).body).toMatchObject({ id: 'ADM-D1', kind: 'combined', active: true });
    expect(await connects('ADM-D1', password)).toBe(true);
    expect(await connects('ADM-D1', 'not-the-password')).toBe(false);
    expect((await auditRows('device.create')).map((r) => r.detail.device_id)).toEqual(['ADM-D1']);
    // the same form again (a reload of the result): refused, no password
    const again = await admin.post('/console/admin/devices', { _csrf: csrfOf(form.body), id: 'ADM-D1', kind: 'combined' });
    expect(again.statusCode).toBe(400);
    expect(summary(again.body)).toEqual([['#id', 'Device ADM-D1 is already registered']]);
    expect(again.body).not.toContain(password);
    // nowhere else either: the list, the database (a scrypt hash only)
    expect((await admin.get('/console/admin/devices')).body).not.toContain(password);
    const stored = JSON.stringify((await db.pool.query(`SELECT * FROM devices WHERE id = 'ADM-D1'`)).rows);
    expect(stored).not.toContain(password);
    expect(JSON.stringify((await db.pool.query(`SELECT * FROM audit_log`)).rows)).not.toContain(password);
  });

  it('lists devices with kind, status, fitting and last reading; deactivates one (the broker refuses it) and activates it again', async () => {
    const list = await admin.get('/console/admin/devices');
    expect(list.body).toContain('GPS and alcohol');
    expect(list.body).toContain('Not fitted');
    const off = await admin.post('/console/admin/devices/ADM-D1/active', { _csrf: csrfOf(list.body), active: 'no' });
    expect(off.statusCode).toBe(303);
    expect((await api('GET', '/v1/devices/ADM-D1')).body.active).toBe(false);
    expect(await connects('ADM-D1', password)).toBe(false);
    expect((await admin.get('/console/admin/devices')).body).toContain('Deactivated');
    await admin.post('/console/admin/devices/ADM-D1/active', { _csrf: csrfOf(list.body), active: 'yes' });
    expect((await api('GET', '/v1/devices/ADM-D1')).body.active).toBe(true);
    expect((await auditRows('device.deactivate')).length).toBe(1);
    expect((await admin.post('/console/admin/devices/NO-SUCH/active', { _csrf: csrfOf(list.body), active: 'no' })).statusCode).toBe(404);
  });
});

describe('subjects and fittings', () => {
  it('shows the API’s validation errors for a new subject in the summary, including the API’s own time-zone check', async () => {
    const form = await admin.get('/console/admin/subjects/new');
    const bad = await admin.post('/console/admin/subjects', { _csrf: csrfOf(form.body), id: 'bad id!', display_name: '', cohort: 'none', rag: 'red', timezone: 'Europe/London', managers: '' });
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body).map((e) => e[0])).toEqual(['#id', '#display-name', '#cohort']);
    const zone = await admin.post('/console/admin/subjects', { _csrf: csrfOf(form.body), id: 'ADM-S1', display_name: 'Dora Example', cohort: 'fixed', rag: 'amber', timezone: 'Mars/Olympus', managers: 'om-1' });
    expect(summary(zone.body)).toEqual([['#timezone', 'Timezone Mars/Olympus is not an IANA time zone']]);
    expect((await api('GET', '/v1/subjects/ADM-S1')).status).toBe(404);
  });

  it('creates a subject and edits it; the API sees both; the audit names the fields changed', async () => {
    const form = await admin.get('/console/admin/subjects/new');
    const res = await admin.post('/console/admin/subjects', { _csrf: csrfOf(form.body), id: 'ADM-S1', display_name: 'Dora Example', cohort: 'fixed', rag: 'amber', timezone: 'Europe/London', managers: 'om-1, om-2' });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/console/admin/subjects/ADM-S1');
    expect((await api('GET', '/v1/subjects/ADM-S1')).body).toMatchObject({ display_name: 'Dora Example', cohort: 'fixed', rag: 'amber', offender_manager_ids: ['om-1', 'om-2'] });
    const page = await admin.get('/console/admin/subjects/ADM-S1');
    expect(page.statusCode).toBe(200);
    const edit = await admin.post('/console/admin/subjects/ADM-S1', { _csrf: csrfOf(page.body), display_name: 'Dora Example-Smith', cohort: 'flex', rag: 'red', timezone: 'Europe/Dublin', managers: 'om-3' });
    expect(edit.statusCode).toBe(303);
    expect((await api('GET', '/v1/subjects/ADM-S1')).body).toMatchObject({ display_name: 'Dora Example-Smith', cohort: 'flex', rag: 'red', timezone: 'Europe/Dublin', offender_manager_ids: ['om-3'] });
    expect((await api('GET', '/v1/subjects/ADM-S1', 'offender_manager', 'om-1')).status).toBe(404);
    expect((await auditRows('subject.update')).map((r) => r.detail.fields)).toEqual([['cohort', 'display_name', 'offender_manager_ids', 'rag', 'timezone']]);
    expect((await admin.get('/console/admin/subjects/ADM-S1?saved=1')).body).toContain('The changes were saved.');
    // the subject page is a read of the person: audited
    expect((await auditRows('subject.read')).some((r) => r.subject_id === 'ADM-S1' && r.detail.via === 'console.admin')).toBe(true);
    const badEdit = await admin.post('/console/admin/subjects/ADM-S1', { _csrf: csrfOf(page.body), display_name: '', cohort: 'flex', rag: 'purple', timezone: 'Nowhere/Land', managers: '' });
    expect(badEdit.statusCode).toBe(400);
    expect(summary(badEdit.body).map((e) => e[0])).toEqual(['#display-name', '#rag']);
    expect((await api('GET', '/v1/subjects/ADM-S1')).body.display_name).toBe('Dora Example-Smith');
    const list = await admin.get('/console/admin/subjects');
    expect(list.body).toContain('Dora Example-Smith');
    expect((await auditRows('subject.list')).some((r) => r.subject_id === 'ADM-S1')).toBe(true);
  });

  it('the subject edit is on the API as PATCH /v1/subjects/{id} (admin only, validated the same way)', async () => {
    // a field not given is not changed (no schema default fills it in)
    expect((await svc.app.inject({ method: 'PATCH', url: '/v1/subjects/ADM-S1', headers: await authHeader('admin'), payload: { rag: 'green' } })).json()).toMatchObject({ rag: 'green', cohort: 'flex', timezone: 'Europe/Dublin', offender_manager_ids: ['om-3'], display_name: 'Dora Example-Smith' });
    expect((await svc.app.inject({ method: 'PATCH', url: '/v1/subjects/ADM-S1', headers: await authHeader('admin'), payload: { timezone: 'Mars/Olympus' } })).statusCode).toBe(400);
    expect((await svc.app.inject({ method: 'PATCH', url: '/v1/subjects/ADM-S1', headers: await authHeader('admin'), payload: {} })).statusCode).toBe(400);
    expect((await svc.app.inject({ method: 'PATCH', url: '/v1/subjects/NOBODY', headers: await authHeader('admin'), payload: { rag: 'red' } })).statusCode).toBe(404);
    expect((await svc.app.inject({ method: 'PATCH', url: '/v1/subjects/ADM-S1', headers: await authHeader('offender_manager', 'om-3'), payload: { rag: 'red' } })).statusCode).toBe(403);
  });

  it('fits a device (start in the subject’s time zone) and ends the fitting; the API sees both; an overlap is shown in the summary', async () => {
    const page = await admin.get('/console/admin/subjects/ADM-S1');
    expect(page.body).toContain('<option value="ADM-D1"');
    const fit = await admin.post('/console/admin/subjects/ADM-S1/fittings', { _csrf: csrfOf(page.body), device_id: 'ADM-D1', start: '2026-07-01T09:30' });
    expect(fit.statusCode).toBe(303);
    const fittings = (await api('GET', '/v1/subjects/ADM-S1/assignments')).body.items!;
    // 09:30 in Dublin in July (IST, UTC+1) is 08:30 UTC
    expect(fittings).toEqual([expect.objectContaining({ device_id: 'ADM-D1', start: '2026-07-01T08:30:00.000Z', end: null })]);
    expect((await admin.get('/console/admin/devices')).body).toMatch(/ADM-S1<\/a> since/);
    const overlap = await admin.post('/console/admin/subjects/ADM-S1/fittings', { _csrf: csrfOf(page.body), device_id: 'ADM-D1', start: '2026-08-01T09:30' });
    expect(overlap.statusCode).toBe(409);
    expect(summary(overlap.body)[0]![0]).toBe('#device-id');
    expect(summary(overlap.body)[0]![1]).toContain('is fitted to ADM-S1');
    const missing = await admin.post('/console/admin/subjects/ADM-S1/fittings', { _csrf: csrfOf(page.body), device_id: '', start: 'tomorrow' });
    expect(summary(missing.body)).toEqual([['#device-id', 'Select or enter the device to fit'], ['#start', 'Enter the start as a date and time']]);
    const aid = fittings[0]!.id as string;
    const early = await admin.post(`/console/admin/subjects/ADM-S1/fittings/${aid}/end`, { _csrf: csrfOf(page.body), end: '2026-06-01T09:30' });
    expect(early.statusCode).toBe(409);
    expect(summary(early.body)[0]).toEqual([`#end-${aid}`, 'End must be after the start 2026-07-01T08:30:00.000Z']);
    const end = await admin.post(`/console/admin/subjects/ADM-S1/fittings/${aid}/end`, { _csrf: csrfOf(page.body), end: '2026-07-02T10:00' });
    expect(end.statusCode).toBe(303);
    expect((await api('GET', '/v1/subjects/ADM-S1/assignments')).body.items![0]).toMatchObject({ end: '2026-07-02T09:00:00.000Z' });
    expect((await auditRows('assignment.create')).length).toBe(1);
    expect((await auditRows('assignment.end')).length).toBe(1);
  });
});

describe('webhooks and alert emails', () => {
  it('a manager registers a webhook: the generated secret is shown once and is the one stored (encrypted); renew and delete', async () => {
    const om = new ConsoleClient(svc.app);
    await om.signIn('offender_manager', 'om-3');
    const list = await om.get('/console/webhooks');
    expect(list.statusCode).toBe(200);
    const bad = await om.post('/console/webhooks', { _csrf: csrfOf(list.body), url: 'ftp://example.org/x' });
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body)).toEqual([['#url', 'Url must be http or https, not ftp']]);
    const res = await om.post('/console/webhooks', { _csrf: csrfOf(list.body), url: 'http://127.0.0.1:9/hook' });
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const secret = secretOf(res.body)!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const mine = (await api('GET', '/v1/webhooks', 'offender_manager', 'om-3')).body.items!;
    expect(mine).toEqual([expect.objectContaining({ url: 'http://127.0.0.1:9/hook', status: 'active' })]);
    const row = (await db.pool.query(`SELECT id, secret_enc FROM webhooks`)).rows[0] as { id: string; secret_enc: string };
    expect(row.secret_enc).not.toContain(secret);
    expect(decryptSecret(parseSecretsKey(svc.rt.config.SECRETS_KEY!)!, row.id, row.secret_enc)).toBe(secret);
    const after = await om.get('/console/webhooks');
    expect(after.body).toContain('http://127.0.0.1:9/hook');
    expect(after.body).not.toContain(secret);
    await db.pool.query(`UPDATE webhooks SET expires_at = now() - interval '1 day'`);
    expect((await om.get('/console/webhooks')).body).toContain('Expired');
    const renew = await om.post(`/console/webhooks/${row.id}/renew`, { _csrf: csrfOf(after.body) });
    expect(renew.headers.location).toBe('/console/webhooks?renewed=1');
    expect((await api('GET', '/v1/webhooks', 'offender_manager', 'om-3')).body.items![0]!.status).toBe('active');
    // another manager can neither renew nor delete it
    const other = new ConsoleClient(svc.app);
    await other.signIn('offender_manager', 'om-4');
    const otherCsrf = csrfOf((await other.get('/console/webhooks')).body);
    expect((await other.post(`/console/webhooks/${row.id}/renew`, { _csrf: otherCsrf })).statusCode).toBe(404);
    expect((await other.post(`/console/webhooks/${row.id}/delete`, { _csrf: otherCsrf })).statusCode).toBe(404);
    expect((await om.post(`/console/webhooks/${row.id}/delete`, { _csrf: csrfOf(after.body) })).statusCode).toBe(303);
    expect((await api('GET', '/v1/webhooks', 'offender_manager', 'om-3')).body.items).toEqual([]);
    expect((await auditRows('webhook.create', 'om-3')).length).toBe(1);
    expect((await auditRows('webhook.renew', 'om-3')).length).toBe(1);
    expect((await auditRows('webhook.delete', 'om-3')).length).toBe(1);
  });

  it('an admin lists every webhook with its owner (audited) and revokes one; admins cannot register one', async () => {
    const sup = new ConsoleClient(svc.app);
    await sup.signIn('supervisor', 'sup-1');
    await sup.post('/console/webhooks', { _csrf: csrfOf((await sup.get('/console/webhooks')).body), url: 'http://127.0.0.1:9/sup' });
    const list = await admin.get('/console/webhooks');
    expect(list.body).toContain('sup-1 (supervisor)');
    expect(list.body).toContain('http://127.0.0.1:9/sup');
    expect((await auditRows('webhooks.read')).length).toBeGreaterThan(0);
    expect((await admin.post('/console/webhooks', { _csrf: csrfOf(list.body), url: 'http://127.0.0.1:9/adm' })).statusCode).toBe(403);
    const id = (await db.pool.query(`SELECT id FROM webhooks WHERE owner_id = 'sup-1'`)).rows[0].id as string;
    expect((await admin.post(`/console/webhooks/${id}/delete`, { _csrf: csrfOf(list.body) })).statusCode).toBe(303);
    expect((await api('GET', '/v1/webhooks')).body.items!.find((w) => w.id === id)).toMatchObject({ status: 'revoked', revoked_by: 'adm-1' });
  });

  it('a manager sets, renews and stops their alert email (validated like the API); an admin lists and revokes', async () => {
    const om = new ConsoleClient(svc.app);
    await om.signIn('offender_manager', 'om-5');
    const page = await om.get('/console/notifications');
    expect(page.body).toContain('No address is set');
    const bad = await om.post('/console/notifications', { _csrf: csrfOf(page.body), email: 'not an address' });
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body)).toEqual([['#email', 'Enter an email address in the correct format, like name@example.gov.uk']]);
    expect((await om.post('/console/notifications', { _csrf: csrfOf(page.body), email: 'om5@probation.example.gov.uk' })).statusCode).toBe(303);
    expect((await api('GET', '/v1/me/notifications', 'offender_manager', 'om-5')).body).toMatchObject({ email: 'om5@probation.example.gov.uk', expired: false });
    expect((await om.post('/console/notifications/renew', { _csrf: csrfOf(page.body) })).statusCode).toBe(303);
    expect((await auditRows('notifications.renew', 'om-5')).length).toBe(1);
    const all = await admin.get('/console/admin/notifications');
    expect(all.body).toContain('om5@probation.example.gov.uk');
    expect((await auditRows('notifications.read')).length).toBe(1);
    expect((await admin.post('/console/admin/notifications/om-5/revoke', { _csrf: csrfOf(all.body) })).statusCode).toBe(303);
    expect((await api('GET', '/v1/me/notifications', 'offender_manager', 'om-5')).body.email).toBeNull();
    expect((await om.post('/console/notifications/delete', { _csrf: csrfOf(page.body) })).statusCode).toBe(404);
    await om.post('/console/notifications', { _csrf: csrfOf(page.body), email: 'om5@probation.example.gov.uk' });
    expect((await om.post('/console/notifications/delete', { _csrf: csrfOf(page.body) })).statusCode).toBe(303);
    expect((await api('GET', '/v1/me/notifications', 'offender_manager', 'om-5')).body.email).toBeNull();
  });
});

describe('rejections and audit search', () => {
  beforeAll(async () => {
    await db.pool.query(`INSERT INTO audit_log (actor, role, action, detail) SELECT 'bulk-1', 'supervisor', 'subject.read', jsonb_build_object('n', n) FROM generate_series(1, 60) n`);
    for (let i = 0; i < 60; i++) {
      await db.pool.query(`INSERT INTO rejections (topic, device_id, reason, raw) VALUES ($1, $2, $3, $4)`, [
        `tags/v1/${i % 2 ? 'ADM-D1' : 'GHOST'}/gps`,
        i % 2 ? 'ADM-D1' : 'GHOST',
        i % 2 ? 'invalid: lat must be <= 90' : 'unknown_device',
        Buffer.from(`{"n":${i},"note":"<script>alert(1)</script>"}`),
      ]);
    }
  });

  it('lists rejections newest first, 50 a page, filtered by device and reason; raw bytes are text, never markup; the read is audited', async () => {
    const first = await admin.get('/console/admin/rejections');
    expect(first.statusCode).toBe(200);
    expect(first.body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(50);
    expect(first.body).toContain('{&quot;n&quot;:59');
    expect(first.body).not.toContain('<script>alert(1)');
    const older = /href="(\/console\/admin\/rejections\?before=\d+)"/.exec(first.body)![1]!;
    expect((await admin.get(older)).body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(10);
    const ghost = await admin.get('/console/admin/rejections?device_id=GHOST&reason=unknown');
    expect(ghost.body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(30);
    expect(ghost.body).not.toContain('ADM-D1/gps');
    const none = await admin.get('/console/admin/rejections?reason=invalid&device_id=GHOST');
    expect(none.body).toContain('No rejected telemetry matches');
    const bad = await admin.get('/console/admin/rejections?device_id=no%20spaces');
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body)).toEqual([['#device-id', 'Enter a device ID of letters, digits, hyphens or underscores']]);
    expect((await auditRows('rejections.read')).map((r) => r.detail)).toContainEqual({ count: 30, device_id: 'GHOST', reason: 'unknown' });
  });

  it('searches the audit log by user, subject, action and period, paginated; each search is itself audited', async () => {
    const empty = await admin.get('/console/admin/audit');
    expect(empty.body).not.toContain('data-testid="audit"');
    const byOm = await admin.get('/console/admin/audit?actor=om-3&action=webhook.create');
    expect(byOm.body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(1);
    expect(byOm.body).toContain('webhook.create');
    const bySubject = await admin.get('/console/admin/audit?subject_id=ADM-S1&search=1');
    expect(bySubject.body).toContain('subject.update');
    expect(bySubject.body).not.toContain('webhook.create');
    const reads = await auditRows('audit.read');
    expect(reads.at(-1)).toMatchObject({ subject_id: 'ADM-S1', detail: { via: 'console.audit' } });
    expect(reads.some((r) => r.detail.filter_action === 'webhook.create')).toBe(true);
    // a period in UK time: nothing before the service started, everything after
    const future = await admin.get('/console/admin/audit?from=2099-01-01T00:00&search=1');
    expect(future.body).toContain('No audit entry matches');
    const all = await admin.get('/console/admin/audit?actor=bulk-1&from=2020-01-01T00:00&to=2099-01-01T00:00');
    expect(all.body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(50);
    const older = /href="(\/console\/admin\/audit\?[^"]*before=\d+)"/.exec(all.body)![1]!.replaceAll('&amp;', '&');
    expect(older).toContain('from=2020-01-01T00%3A00');
    const second = await admin.get(older);
    expect(second.body.match(/<tr class="govuk-table__row">/g)!.length - 1).toBe(10);
    expect(second.body).toContain('{&quot;n&quot;:1}');
    const bad = await admin.get('/console/admin/audit?from=yesterday&to=2020-01-01T00:00&action=DROP%20TABLE');
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body)).toEqual([
      ['#action', 'Enter an action like subject.read (lower-case letters, dots and underscores)'],
      ['#from', 'Enter the start of the period as a date and time'],
    ]);
    const backwards = await admin.get('/console/admin/audit?from=2026-01-02T00:00&to=2026-01-01T00:00');
    expect(summary(backwards.body)).toEqual([['#to', 'The end of the period must be after its start']]);
  });
});

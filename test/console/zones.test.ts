import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { ConsoleClient, csrfOf } from './support.js';

/** The console's zone form without JavaScript: posts go through the API's zone code (geofence/zones.service.ts). */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let om: ConsoleClient;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  const admin = await authHeader('admin');
  for (const s of [
    { id: 'Z-S1', display_name: 'Zed Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] },
    { id: 'Z-S2', display_name: 'Yan Other', cohort: 'flex', rag: 'green', offender_manager_ids: ['om-2'] },
  ]) {
    const res = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: s });
    expect(res.statusCode).toBe(201);
  }
  om = new ConsoleClient(svc.app);
  await om.signIn('offender_manager', 'om-1');
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const apiZones = async (subject = 'Z-S1') => {
  const res = await svc.app.inject({ method: 'GET', url: `/v1/subjects/${subject}/zones`, headers: await authHeader('offender_manager', 'om-1') });
  return (res.json() as { features: Array<{ id: string; geometry: { type: string; coordinates: unknown }; properties: Record<string, unknown> }> }).features;
};
const auditRows = async (action: string) =>
  (await db.pool.query(`SELECT actor, subject_id, detail FROM audit_log WHERE action = $1 ORDER BY id`, [action])).rows as Array<{ actor: string; subject_id: string; detail: Record<string, unknown> }>;

/** Posts the zone form of `url` as a browser without JavaScript would: its CSRF token, the fields typed. */
async function postForm(url: string, fields: Record<string, string>) {
  const page = await om.get(url);
  expect(page.statusCode).toBe(200);
  return om.post(url, { _csrf: csrfOf(page.body), ...fields });
}
/** The GOV.UK error summary's links (href and text). */
function summary(html: string): Array<{ href: string; text: string }> {
  const box = /<div class="govuk-error-summary"[\s\S]*?<\/ul>/.exec(html)?.[0] ?? '';
  return [...box.matchAll(/<a href="([^"]+)">([\s\S]*?)<\/a>/g)].map((m) => ({ href: m[1]!, text: m[2]!.trim() }));
}

describe('console zone form (no JavaScript)', () => {
  it('saves a circle with a schedule, exceptions and grace; the API holds it and the change is audited', async () => {
    const res = await postForm('/console/subjects/Z-S1/zones/new', {
      name: 'Victim home', kind: 'exclusion', shape: 'circle', centre_lat: '52.9536', centre_lon: '-1.1505', radius_m: '250',
      window_0_days: 'mon', window_0_start: '19:00', window_0_end: '07:00',
      active_from: '2026-12-01 09:00', exception_0_from: '2026-12-24 18:00', exception_0_to: '2026-12-25 10:00', grace_s: '90',
    });
    expect(res.statusCode, res.body).toBe(303);
    expect(res.headers.location).toBe('/console/subjects/Z-S1');
    const [z] = await apiZones();
    expect(z).toMatchObject({
      geometry: { type: 'Point', coordinates: [-1.1505, 52.9536] },
      properties: { kind: 'exclusion', name: 'Victim home', radius_m: 250, grace_s: 90, schedule: [{ days: ['mon'], start: '19:00', end: '07:00' }], active_from: '2026-12-01T09:00:00.000Z', created_by: 'om-1' },
    });
    // typed in the person's time zone (Europe/London: GMT in December)
    expect(z!.properties.exceptions).toEqual([{ from: '2026-12-24T18:00:00Z', to: '2026-12-25T10:00:00Z' }]);
    const created = await auditRows('zone.create');
    expect(created.at(-1)).toMatchObject({ actor: 'om-1', subject_id: 'Z-S1', detail: { zone_id: z!.id, via: 'console' } });
    // the form page drew the person's zones: audited as the API audits a zone list
    expect((await auditRows('zone.list')).some((r) => r.actor === 'om-1' && r.detail.via === 'console.zone-form')).toBe(true);
    // the form page: the console's strict CSP, its page data as JSON (not executed), nothing from elsewhere
    const form = await om.get('/console/subjects/Z-S1/zones/new');
    expect(form.headers['content-security-policy']).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9+/=]+';/);
    expect(form.body).toContain('<script type="application/json" id="zone-map-data">');
    expect(form.body).toContain('<script type="module" src="/console/assets/js/zones-edit.js">');
    for (const m of form.body.matchAll(/(?:src|href|action)="([^"]*)"/g)) expect(m[1]).toMatch(/^(\/(?!\/)|#|$)/);
    expect(form.body).not.toMatch(/\sstyle=|\son[a-z]+=/);
    // the subject page links to change and delete it
    const subject = await om.get('/console/subjects/Z-S1');
    expect(subject.body).toContain(`/console/subjects/Z-S1/zones/${z!.id}/edit`);
    expect(subject.body).toContain(`/console/subjects/Z-S1/zones/${z!.id}/delete`);
    expect(subject.body).toContain('/console/subjects/Z-S1/zones/new');
  });

  it('saves a polygon typed as lat,lon lines (closed for the person); the API holds the ring as lon/lat', async () => {
    const before = (await apiZones()).length;
    const res = await postForm('/console/subjects/Z-S1/zones/new', { name: 'Curfew address', kind: 'inclusion', shape: 'polygon', vertices: '52.95, -1.16\n52.95, -1.15\r\n52.96, -1.15\n', grace_s: '60' });
    expect(res.statusCode, res.body).toBe(303);
    const zones = await apiZones();
    expect(zones).toHaveLength(before + 1);
    expect(zones.at(-1)).toMatchObject({ geometry: { type: 'Polygon', coordinates: [[[-1.16, 52.95], [-1.15, 52.95], [-1.15, 52.96], [-1.16, 52.95]]] }, properties: { kind: 'inclusion', name: 'Curfew address' } });
  });

  it('refuses a self-intersecting polygon with the API’s reason in an error summary linked to the field, keeps the input, saves nothing', async () => {
    const before = (await apiZones()).length;
    const bowtie = '52.95, -1.16\n52.96, -1.15\n52.95, -1.15\n52.96, -1.16';
    const res = await postForm('/console/subjects/Z-S1/zones/new', { name: 'Bow tie', kind: 'exclusion', shape: 'polygon', vertices: bowtie });
    expect(res.statusCode).toBe(400);
    const errs = summary(res.body);
    expect(errs).toHaveLength(1);
    expect(errs[0]!.href).toBe('#vertices');
    expect(errs[0]!.text).toMatch(/intersects itself/);
    expect(res.body).toContain('<title>Error: Add a zone');
    expect(res.body).toContain('id="vertices-error"');
    expect(res.body).toContain(bowtie);
    expect(res.body).toContain('value="Bow tie"');
    expect(await apiZones()).toHaveLength(before);
    // the same words as the API's answer for the same ring
    const ring = bowtie.split('\n').map((l) => l.split(', ').map(Number).reverse());
    const api = await svc.app.inject({ method: 'POST', url: '/v1/subjects/Z-S1/zones', headers: await authHeader('offender_manager', 'om-1'), payload: { type: 'Feature', geometry: { type: 'Polygon', coordinates: [[...ring, ring[0]]] }, properties: { kind: 'exclusion' } } });
    expect(api.statusCode).toBe(400);
    const detail = (api.json() as { detail: string }).detail.replace(/^invalid zone: /, '');
    expect(errs[0]!.text).toContain(detail);
  });

  it('refuses what the API’s body schema refuses (a name over 200 characters, a grace period over an hour), linked to the fields', async () => {
    const before = (await apiZones()).length;
    const res = await postForm('/console/subjects/Z-S1/zones/new', { name: 'x'.repeat(201), kind: 'inclusion', shape: 'circle', centre_lat: '52.9', centre_lon: '-1.1', radius_m: '100', grace_s: '7200' });
    expect(res.statusCode).toBe(400);
    expect(summary(res.body).map((e) => e.href)).toEqual(['#name', '#grace_s']);
    expect(await apiZones()).toHaveLength(before);
  });

  it('shows every problem the API would give, each linked to its field: radius out of range, a bad schedule, a period the wrong way round', async () => {
    const before = (await apiZones()).length;
    const res = await postForm('/console/subjects/Z-S1/zones/new', {
      kind: 'exclusion', shape: 'circle', centre_lat: '52.9', centre_lon: '-1.1', radius_m: '60000',
      window_0_days: 'tue', window_0_start: '25:00', window_0_end: '07:00',
      active_from: '2026-12-02 10:00', active_to: '2026-12-01 10:00', exception_0_from: '2026-12-05 10:00', exception_0_to: '2026-12-04 10:00',
    });
    expect(res.statusCode).toBe(400);
    const errs = summary(res.body);
    expect(errs.map((e) => e.href)).toEqual(['#radius_m', '#window_0_start', '#active_to', '#exception_0_to']);
    expect(errs[0]!.text).toMatch(/radius_m must be above 0 and at most 50000 m, got 60000/);
    expect(errs[1]!.text).toMatch(/schedule\[0\]\.start must be HH:MM/);
    expect(res.body).toContain('value="60000"');
    expect(res.body).toContain('value="25:00"');
    expect(await apiZones()).toHaveLength(before);
  });

  it('says what is missing or not a number before asking the API', async () => {
    const res = await postForm('/console/subjects/Z-S1/zones/new', { shape: 'circle', centre_lat: 'north', radius_m: '', grace_s: 'a minute', window_1_start: '19:00' });
    expect(res.statusCode).toBe(400);
    expect(summary(res.body).map((e) => e.href)).toEqual(['#kind', '#centre_lat', '#centre_lon', '#radius_m', '#window_0_days', '#window_0_end', '#grace_s']);
    const none = await postForm('/console/subjects/Z-S1/zones/new', { kind: 'exclusion' });
    expect(summary(none.body).map((e) => e.href)).toEqual(['#shape']);
  });

  it('changes a zone as a new version (the API has no update): the old one deleted, the new one created, both audited', async () => {
    const old = (await apiZones()).find((z) => z.properties.name === 'Victim home')!;
    const form = await om.get(`/console/subjects/Z-S1/zones/${old.id}/edit`);
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain('value="52.9536"');
    expect(form.body).toContain('value="2026-12-24 18:00"');
    const res = await om.post(`/console/subjects/Z-S1/zones/${old.id}/edit`, {
      _csrf: csrfOf(form.body), name: 'Victim home (new)', kind: 'exclusion', shape: 'circle', centre_lat: '52.9536', centre_lon: '-1.1505', radius_m: '400', grace_s: '60',
    });
    expect(res.statusCode, res.body).toBe(303);
    const zones = await apiZones();
    expect(zones.find((z) => z.id === old.id)).toBeUndefined();
    const now = zones.find((z) => z.properties.name === 'Victim home (new)')!;
    expect(now.properties.radius_m).toBe(400);
    expect((await auditRows('zone.delete')).at(-1)).toMatchObject({ actor: 'om-1', detail: { zone_id: old.id, replaced_by: now.id, via: 'console' } });
    expect((await auditRows('zone.create')).at(-1)).toMatchObject({ actor: 'om-1', detail: { zone_id: now.id, replaces: old.id, via: 'console' } });
    // an invalid change keeps the old zone
    const again = await om.get(`/console/subjects/Z-S1/zones/${now.id}/edit`);
    const bad = await om.post(`/console/subjects/Z-S1/zones/${now.id}/edit`, { _csrf: csrfOf(again.body), kind: 'exclusion', shape: 'circle', centre_lat: '95', centre_lon: '-1.1505', radius_m: '400' });
    expect(bad.statusCode).toBe(400);
    expect(summary(bad.body)).toEqual([{ href: '#centre_lat', text: expect.stringMatching(/latitude 95 is out of range/) }]);
    expect((await apiZones()).some((z) => z.id === now.id)).toBe(true);
  });

  it('deletes a zone after a confirmation page, audited as the API does', async () => {
    const zone = (await apiZones()).find((z) => z.properties.name === 'Curfew address')!;
    const confirm = await om.get(`/console/subjects/Z-S1/zones/${zone.id}/delete`);
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain('Are you sure you want to delete the zone “Curfew address”?');
    expect((await apiZones()).some((z) => z.id === zone.id)).toBe(true);
    const res = await om.post(`/console/subjects/Z-S1/zones/${zone.id}/delete`, { _csrf: csrfOf(confirm.body) });
    expect(res.statusCode).toBe(303);
    expect((await apiZones()).some((z) => z.id === zone.id)).toBe(false);
    expect((await auditRows('zone.delete')).at(-1)).toMatchObject({ actor: 'om-1', subject_id: 'Z-S1', detail: { zone_id: zone.id, via: 'console' } });
    // a second time: there is no such zone
    expect((await om.post(`/console/subjects/Z-S1/zones/${zone.id}/delete`, { _csrf: csrfOf(confirm.body) })).statusCode).toBe(404);
  });

  it('does not offer to change a zone of several polygons or with holes (the form would lose rings), but deletes it', async () => {
    const square = (x: number) => [[x, 52.9], [x + 0.01, 52.9], [x + 0.01, 52.91], [x, 52.91], [x, 52.9]];
    const made = await svc.app.inject({ method: 'POST', url: '/v1/subjects/Z-S1/zones', headers: await authHeader('offender_manager', 'om-1'), payload: { type: 'Feature', geometry: { type: 'MultiPolygon', coordinates: [[square(-1.2)], [square(-1.1)]] }, properties: { kind: 'exclusion', name: 'Two parks' } } });
    expect(made.statusCode, made.body).toBe(201);
    const zid = (made.json() as { id: string }).id;
    const subject = await om.get('/console/subjects/Z-S1');
    expect(subject.body).not.toContain(`/zones/${zid}/edit`);
    expect(subject.body).toContain(`/zones/${zid}/delete`);
    const edit = await om.get(`/console/subjects/Z-S1/zones/${zid}/edit`);
    expect(edit.statusCode).toBe(409);
    const post = await om.post(`/console/subjects/Z-S1/zones/${zid}/edit`, { _csrf: csrfOf(subject.body), kind: 'exclusion', shape: 'circle', centre_lat: '52.9', centre_lon: '-1.1', radius_m: '100' });
    expect(post.statusCode).toBe(409);
    expect((await apiZones()).find((z) => z.id === zid)?.geometry.type).toBe('MultiPolygon');
    const confirm = await om.get(`/console/subjects/Z-S1/zones/${zid}/delete`);
    expect((await om.post(`/console/subjects/Z-S1/zones/${zid}/delete`, { _csrf: csrfOf(confirm.body) })).statusCode).toBe(303);
  });

  it('answers 404 for another manager’s person, on every zone page and post, and saves nothing', async () => {
    const own = (await apiZones())[0]!;
    const page = await om.get('/console/subjects/Z-S1/zones/new');
    const csrf = csrfOf(page.body);
    expect((await om.get('/console/subjects/Z-S2/zones/new')).statusCode).toBe(404);
    const post = await om.post('/console/subjects/Z-S2/zones/new', { _csrf: csrf, kind: 'exclusion', shape: 'circle', centre_lat: '52.9', centre_lon: '-1.1', radius_m: '100' });
    expect(post.statusCode).toBe(404);
    expect(post.body).toContain('Page not found');
    // a zone of someone else's person, reached through one's own person's address: not found either
    const theirs = await svc.app.inject({ method: 'POST', url: '/v1/subjects/Z-S2/zones', headers: await authHeader('offender_manager', 'om-2'), payload: { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.1, 52.9] }, properties: { kind: 'exclusion', radius_m: 50 } } });
    const zid = (theirs.json() as { id: string }).id;
    expect((await om.get(`/console/subjects/Z-S1/zones/${zid}/edit`)).statusCode).toBe(404);
    expect((await om.get(`/console/subjects/Z-S2/zones/${zid}/delete`)).statusCode).toBe(404);
    expect((await om.post(`/console/subjects/Z-S1/zones/${zid}/delete`, { _csrf: csrf })).statusCode).toBe(404);
    expect((await om.post(`/console/subjects/Z-S2/zones/${own.id}/delete`, { _csrf: csrf })).statusCode).toBe(404);
    const res = await svc.app.inject({ method: 'GET', url: '/v1/subjects/Z-S2/zones', headers: await authHeader('offender_manager', 'om-2') });
    expect((res.json() as { features: unknown[] }).features).toHaveLength(1);
  });

  it('refuses a post without the session’s CSRF token and saves nothing; a supervisor cannot change zones (as on the API)', async () => {
    const before = (await apiZones()).length;
    const fields = { kind: 'exclusion', shape: 'circle', centre_lat: '52.9', centre_lon: '-1.1', radius_m: '100' };
    for (const csrf of [undefined, 'not-the-token']) {
      const res = await om.post('/console/subjects/Z-S1/zones/new', csrf ? { _csrf: csrf, ...fields } : fields);
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('This form has expired');
    }
    const zid = (await apiZones())[0]!.id;
    expect((await om.post(`/console/subjects/Z-S1/zones/${zid}/delete`, {})).statusCode).toBe(403);
    expect(await apiZones()).toHaveLength(before);
    const sup = new ConsoleClient(svc.app);
    await sup.signIn('supervisor', 'sup-1');
    expect((await sup.get('/console/subjects/Z-S1/zones/new')).statusCode).toBe(403);
  });
});

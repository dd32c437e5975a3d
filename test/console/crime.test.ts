import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { runCrimeMatch } from '../../crime/match.job.js';
import { ConsoleClient, csrfOf } from './support.js';
import { pdfText } from '../support/pdf.js';

/** The crime pages (issue 13 §5) through the console: upload, row errors, progress, crime page, review, check, match evidence. */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
const C = { lat: 52.95, lon: -1.15 };
const north = (m: number) => ({ lat: C.lat + m / 111_194.93, lon: C.lon });
const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const T0 = NOW - 3 * 3_600_000;
const W = { from: NOW - 100 * 60_000, to: NOW - 70 * 60_000 };
const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);
const row = (batch: string, ref: string, w: { from: number; to: number }, at: { lat: number; lon: number }, text = 'rear door forced') =>
  `NOTTINGHAMSHIRE,BIAD,,${batch},${ref},${compact(w.from)},${compact(w.to)},,,${at.lat.toFixed(7)},${at.lon.toFixed(7)},WGS84,${text}`;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function admin(url: string, payload: object) {
  const res = await svc.app.inject({ method: 'POST', url, headers: await authHeader('admin'), payload });
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
}

/** A multipart/form-data body as a browser sends the upload form. */
function multipart(fields: Record<string, string>, file: { name: string; filename: string; body: string }): { payload: Buffer; type: string } {
  const b = '----tagwatchTestBoundary7';
  const parts = Object.entries(fields).map(([k, v]) => `--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  parts.push(`--${b}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: text/csv\r\n\r\n${file.body}\r\n`);
  return { payload: Buffer.from(parts.join('') + `--${b}--\r\n`), type: `multipart/form-data; boundary=${b}` };
}

let batchId: string;
let crimeId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  const people: Array<[string, { lat: number; lon: number }, number]> = [['K-S1', C, 10], ['K-S2', north(150), 60], ['K-S3', north(5000), 10]];
  for (const [id, at, acc] of people) {
    const dev = id.replace('S', 'D');
    await admin('/v1/devices', { id: dev, kind: 'gps' });
    await admin('/v1/subjects', { id, display_name: `Person ${id}`, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
    await admin(`/v1/subjects/${id}/assignments`, { device_id: dev, start: new Date(T0 - 60_000).toISOString() });
    for (let t = T0; t <= NOW - 60_000; t += 300_000) {
      await db.pool.query(`INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) VALUES ($1, 'gps', $2, $2::timestamptz + interval '5 seconds', $3, $4, $5, '{}')`, [dev, new Date(t), at.lat, at.lon, acc]);
    }
  }
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null; detail: Record<string, unknown> }>;

async function analyst(): Promise<ConsoleClient> {
  const c = new ConsoleClient(svc.app);
  await c.signIn('crime_analyst', 'ca-1');
  return c;
}

describe('crime batches in the console', () => {
  it('refuses a batch with no good row: every bad row in the error summary with its row number, nothing stored', async () => {
    const c = await analyst();
    const page = await c.get('/console/crime');
    expect(page.statusCode).toBe(200);
    const res = await c.post('/console/crime/batches', { _csrf: csrfOf(page.body), csv: ['NOTTINGHAMSHIRE,XX,,NOT20261130,CR/9,20261130100000,20261130110000,,,52.9,-1.1,WGS84,x', 'only,three,columns'].join('\n') });
    expect(res.statusCode).toBe(422);
    expect(res.body).toContain('govuk-error-summary');
    expect(res.body).toContain('No row of the batch is valid; nothing was stored');
    expect(res.body).toMatch(/Row 1: [^<]*crime type/);
    expect(res.body).toContain('Row 2: 3 columns, expected 13');
    expect(res.body).toContain('href="#batch-csv"');
    expect((await db.pool.query(`SELECT count(*)::int n FROM crime_batches`)).rows[0].n).toBe(0);
  });

  it('uploads a file (multipart): bad rows listed with row numbers on the batch page, good rows matched, progress shown', async () => {
    const c = await analyst();
    const csrf = csrfOf((await c.get('/console/crime')).body);
    const csv = [row('NOT20261201', 'CR/1', W, C), row('NOT20261201', 'CR/2', { from: NOW - 3_600_000, to: NOW + 3_600_000 }, C), row('NOT20261201', 'CR/3', W, north(20), '=cmd|" /C calc"!A0')].join('\n');
    const body = multipart({ _csrf: csrf }, { name: 'file', filename: 'NOT20261201.csv', body: csv });
    const up = await svc.app.inject({ method: 'POST', url: '/console/crime/batches', headers: { cookie: `tagwatch_console=${c.cookies.get('tagwatch_console')}`, 'content-type': body.type }, payload: body.payload });
    expect(up.statusCode, up.body).toBe(303);
    batchId = /\/console\/crime\/batches\/(\d+)$/.exec(String(up.headers.location))![1]!;
    const queued = await c.get(`/console/crime/batches/${batchId}`);
    expect(queued.statusCode).toBe(200);
    expect(queued.body).toContain('data-testid="row-error-summary"');
    expect(queued.body).toContain('Row 2: the window ends in the future');
    expect(queued.body).toMatch(/Queued<\/strong>, 0 of 2 crimes matched/);
    expect(queued.body).toContain(`href="/console/crime/batches/${batchId}" data-testid="refresh"`);
    expect((await c.get(`/console/crime/batches/${batchId}/progress`)).json()).toMatchObject({ run: { status: 'queued', crimes_done: 0, crimes_total: 2, finished: false } });
    // the upload went through the API's function: the same audit row
    expect(await auditRows('ca-1', 'crime.batch.upload')).toMatchObject([{ detail: { police_batch_id: 'NOT20261201', crime_refs: ['CR/1', 'CR/3'] } }]);

    const run = (await db.pool.query(`SELECT id::text FROM crime_runs WHERE batch_id = $1`, [batchId])).rows[0].id as string;
    await runCrimeMatch(db.pool, run);
    const done = await c.get(`/console/crime/batches/${batchId}`);
    expect(done.body).toMatch(/Done<\/strong>, 2 of 2 crimes matched/);
    expect(done.body).not.toContain('data-testid="refresh"');
    crimeId = /href="\/console\/crime\/crimes\/(\d+)">CR\/1</.exec(done.body)![1]!;
  });

  it('shows the crime with its placed and possible people only: a crime analyst never sees an unmatched person', async () => {
    const c = await analyst();
    const page = await c.get(`/console/crime/crimes/${crimeId}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Person K-S1 (K-S1): placed');
    expect(page.body).toContain('Person K-S2 (K-S2): possible');
    expect(page.body).not.toContain('K-S3');
    expect(page.body).toContain('id="crime-map-data"');
    const data = JSON.parse(/<script type="application\/json" id="crime-map-data">(.*?)<\/script>/s.exec(page.body)![1]!);
    expect(data.crime).toMatchObject({ ref: 'CR/1', radius_m: 100 });
    expect(data.subjects.map((s: { subject_id: string }) => s.subject_id)).toEqual(['K-S1', 'K-S2']);
    expect((await auditRows('ca-1', 'crime.read')).map((r) => r.subject_id)).toEqual(['K-S1', 'K-S2']);
    // the batch list and pages hold no person at all
    expect((await c.get('/console/crime')).body).not.toMatch(/K-S\d/);
    expect((await c.get(`/console/crime/batches/${batchId}`)).body).not.toMatch(/K-S\d/);
  });

  it('reviews through the API’s function: a note is required, a confirmed match raises the alert, a second review is refused', async () => {
    const c = await analyst();
    const page = await c.get(`/console/crime/crimes/${crimeId}`);
    const matchId = /action="\/console\/crime\/matches\/(\d+)\/review"/.exec(page.body)![1]!;
    const csrf = csrfOf(page.body);
    const noNote = await c.post(`/console/crime/matches/${matchId}/review`, { _csrf: csrf, crime_id: crimeId, decision: 'rejected', note: ' ' });
    expect(noNote.statusCode).toBe(400);
    expect(noNote.body).toContain('govuk-error-summary');
    expect(noNote.body).toContain(`href="#note-${matchId}"`);
    const ok = await c.post(`/console/crime/matches/${matchId}/review`, { _csrf: csrf, crime_id: crimeId, decision: 'confirmed', note: 'seen on CCTV at the rear door' });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe(`/console/crime/crimes/${crimeId}#match-${matchId}`);
    const api = (await svc.app.inject({ method: 'GET', url: `/v1/crimes/${crimeId}`, headers: await authHeader('crime_analyst', 'ca-1') })).json();
    const m = api.subjects.find((s: { match_id: string }) => s.match_id === matchId);
    expect(m).toMatchObject({ review: 'confirmed', reviewed_by: 'ca-1', review_note: 'seen on CCTV at the rear door' });
    expect(m.alert_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await auditRows('ca-1', 'crime.match.review')).toMatchObject([{ subject_id: m.subject_id, detail: { decision: 'confirmed', crime_ref: 'CR/1' } }]);
    // the alert it raised reaches the person's manager, whose evidence pack draws the crime and R
    const om = new ConsoleClient(svc.app);
    await om.signIn('offender_manager', 'om-1');
    const alertPdf = await om.get(`/console/alerts/${m.alert_id}/evidence.pdf`);
    expect(alertPdf.statusCode).toBe(200);
    const alertText = pdfText(alertPdf.rawPayload);
    expect(alertText).toContain('Near a reported crime');
    expect(alertText).toMatch(/R = 100 m/);
    expect(alertText).toContain('Crime matching parameters');
    const again = await c.post(`/console/crime/matches/${matchId}/review`, { _csrf: csrf, crime_id: crimeId, decision: 'rejected', note: 'changed my mind' });
    expect(again.statusCode).toBe(409);
    expect(again.body).toContain('was already reviewed');
    expect((await c.post(`/console/crime/matches/${matchId}/review`, { crime_id: crimeId, decision: 'rejected', note: 'no token' })).statusCode).toBe(403);
  });

  it('checks one person with a reason: category and coverage only for a ruled-out person, recorded with the reason', async () => {
    const c = await analyst();
    const page = await c.get(`/console/crime/crimes/${crimeId}`);
    const csrf = csrfOf(page.body);
    const noReason = await c.post(`/console/crime/crimes/${crimeId}/check`, { _csrf: csrf, subject_id: 'K-S3', reason: '' });
    expect(noReason.statusCode).toBe(400);
    expect(noReason.body).toContain('href="#check-reason"');
    expect(await auditRows('ca-1', 'crime.check')).toHaveLength(0);
    const res = await c.post(`/console/crime/crimes/${crimeId}/check`, { _csrf: csrf, subject_id: 'K-S3', reason: 'defence request: alibi' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/Category\s*<\/dt>\s*<dd class="govuk-summary-list__value">\s*ruled out/);
    expect(res.body).toContain('Not shown (only for placed or possible)');
    expect(res.body).not.toContain('Person K-S3');
    expect(res.body).not.toContain('Locations that decide');
    expect(await auditRows('ca-1', 'crime.check')).toMatchObject([{ subject_id: 'K-S3', reason: 'defence request: alibi', detail: { category: 'ruled_out', crime_ref: 'CR/1' } }]);
    const listed = (await svc.app.inject({ method: 'GET', url: '/v1/crime-checks', headers: await authHeader('supervisor') })).json();
    expect(listed.items[0]).toMatchObject({ subject_id: 'K-S3', actor: 'ca-1', reason: 'defence request: alibi' });
  });

  it('downloads the evidence pack of a match: a PDF whose SHA-256 match its CSV and GeoJSON, audited with the crime reference', async () => {
    const c = await analyst();
    const page = await c.get(`/console/crime/crimes/${crimeId}`);
    const matchId = /href="\/console\/crime-matches\/(\d+)\/evidence\.pdf"/.exec(page.body)![1]!;
    const pdf = await c.get(`/console/crime-matches/${matchId}/evidence.pdf`);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    const text = pdfText(pdf.rawPayload);
    const csv = await c.get(`/console/crime-matches/${matchId}/evidence.csv`);
    const geojson = await c.get(`/console/crime-matches/${matchId}/evidence.geojson`);
    expect(text).toContain(`SHA-256 ${sha(csv.rawPayload)}`);
    expect(text).toContain(`SHA-256 ${sha(geojson.rawPayload)}`);
    expect(text).toContain('CR/1');
    expect(text).toMatch(/R = 100 m/);
    expect((await auditRows('ca-1', 'evidence.pdf')).at(-1)).toMatchObject({ detail: { match_id: matchId, crime_ref: 'CR/1', csv_sha256: sha(csv.rawPayload) } });
  });

  it('lets supervisors read but not review or upload, and refuses other roles', async () => {
    const s = new ConsoleClient(svc.app);
    await s.signIn('supervisor', 'sup-1');
    const page = await s.get(`/console/crime/crimes/${crimeId}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('/review"');
    expect((await s.post('/console/crime/matches/1/review', { _csrf: csrfOf(page.body), decision: 'rejected', note: 'x' })).statusCode).toBe(403);
    const om = new ConsoleClient(svc.app);
    await om.signIn('offender_manager', 'om-1');
    expect((await om.get('/console/crime')).statusCode).toBe(403);
    expect((await om.get(`/console/crime/crimes/${crimeId}`)).statusCode).toBe(403);
  });
});

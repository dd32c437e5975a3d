import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type BrowserContext, type Page } from '@playwright/test';
import { adminPoster, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { runCrimeMatch } from '../../crime/match.job.js';
import { pdfText } from '../support/pdf.js';
import { checkPage, launchChromium, SHOTS } from '../support/browser.js';

/**
 * Evidence packs and the crime pages in a real browser (Debian's chromium, Playwright, axe-core):
 * the alert page's PDF and CSV downloads (the PDF lists the CSV's SHA-256), the subject page's
 * period form, a crime batch upload with a bad row, the crime page's map. Screenshots go to
 * test-results/console/evidence-NN-*.png and crime-NN-*.png; page 1 of the PDF is rendered with
 * pdftoppm to evidence-03-pdf-page-1.png.
 */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;
let alertId: string;
const requests: string[] = [];
const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const T0 = NOW - 3 * 3_600_000;
const C = { lat: 52.95, lon: -1.15 };
const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const post = await adminPoster(svc);
  for (const [id, dev, name, at, acc] of [['V-S1', 'V-D1', 'Frank Example', C, 12], ['V-S2', 'V-D2', 'Grace Example', { lat: C.lat + 120 / 111_195, lon: C.lon }, 40]] as const) {
    await post('/v1/subjects', { id, display_name: name, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
    await post('/v1/devices', { id: dev, kind: 'gps' });
    await post(`/v1/subjects/${id}/assignments`, { device_id: dev, start: new Date(T0 - 60_000).toISOString() });
    for (let t = T0; t <= NOW - 60_000; t += 300_000) {
      const wobble = ((t / 300_000) % 5) * 4e-5;
      await db.pool.query(`INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) VALUES ($1, 'gps', $2, $2::timestamptz + interval '6 seconds', $3, $4, $5, '{}')`, [dev, new Date(t), at.lat + wobble, at.lon - wobble, acc]);
    }
  }
  const zone = await db.pool.query<{ id: string }>(`INSERT INTO zones (subject_id, kind, name, geometry, grace_s, created_by) VALUES ('V-S1', 'exclusion', 'High Street', $1, 60, 'om-1') RETURNING id`, [
    JSON.stringify({ type: 'Polygon', coordinates: [[[-1.1512, 52.9493], [-1.1488, 52.9493], [-1.1488, 52.9507], [-1.1512, 52.9507], [-1.1512, 52.9493]]] }),
  ]);
  const ev = (await db.pool.query(`SELECT ts, lat, lon, accuracy_m FROM readings WHERE device_id = 'V-D1' ORDER BY ts LIMIT 3`)).rows.map((r) => ({ ts: r.ts.toISOString(), lat: r.lat, lon: r.lon, accuracy_m: r.accuracy_m, class: 'inside' }));
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'exclusion_breach', subjectId: 'V-S1', deviceId: 'V-D1', zoneId: zone.rows[0]!.id, startedAt: new Date(ev[0]!.ts), late: false, evidence: ev as never }));
  alertId = (r as { alert: { id: string } }).alert.id;
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `${name}`);

async function signIn(context: BrowserContext, role: string, userId: string): Promise<Page> {
  const page = await context.newPage();
  page.on('request', (req) => requests.push(req.url()));
  await page.goto(`${base}/console/sign-in/dev`);
  await page.getByLabel(role).check();
  await page.getByLabel('User ID').fill(userId);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/console(\/|$)/);
  return page;
}

/** Clicks a link that downloads a file and returns its bytes. */
async function download(page: Page, link: string): Promise<{ name: string; body: Buffer }> {
  const [d] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: link }).click()]);
  const path = await d.path();
  return { name: d.suggestedFilename(), body: readFileSync(path) };
}

describe('evidence packs and crime pages in a browser', () => {
  it('downloads an alert’s evidence pack: a PDF whose listed SHA-256 matches the CSV downloaded from the page', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await signIn(context, 'Offender manager', 'om-1');
    await page.goto(`${base}/console/alerts/${alertId}`);
    await expect.poll(() => page.locator('#alert-map').getAttribute('data-ready')).toBe('true');
    await accessible(page, 'evidence-01-alert-with-pack');
    const pdf = await download(page, 'Download the evidence pack (PDF)');
    const csv = await download(page, 'Download the locations (CSV)');
    expect(pdf.name).toBe(`alert-${alertId}.pdf`);
    expect(pdf.body.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    const text = pdfText(pdf.body);
    expect(text).toContain(`SHA-256 ${sha(csv.body)}`);
    expect(csv.body.toString('utf8').split('\r\n')[0]).toBe('reference,subject_id,display_name,n,device_time_utc,received_utc,lat,lon,accuracy_m,class,device_id,distance_m');
    // page 1 of the PDF as an image, to look at
    const file = join(SHOTS, 'evidence-02-alert-pack.pdf');
    (await import('node:fs')).writeFileSync(file, pdf.body);
    execFileSync('/usr/bin/pdftoppm', ['-r', '80', '-png', '-f', '1', '-l', '1', '-singlefile', file, join(SHOTS, 'evidence-03-pdf-page-1')]);
    expect(existsSync(join(SHOTS, 'evidence-03-pdf-page-1.png'))).toBe(true);

    // the subject page's period form: a download without JavaScript's help
    await page.goto(`${base}/console/subjects/V-S1`);
    await accessible(page, 'evidence-04-subject-period-form');
    const local = (ms: number) => new Date(ms).toLocaleString('sv-SE', { timeZone: 'Europe/London' }).replace(' ', 'T').slice(0, 16);
    const periodForm = page.getByTestId('period-evidence');
    await periodForm.getByLabel('From').fill(local(T0));
    await periodForm.getByLabel('To').fill(local(NOW));
    const [d] = await Promise.all([page.waitForEvent('download'), periodForm.getByRole('button', { name: 'Download' }).click()]);
    expect(readFileSync(await d.path()).subarray(0, 5).toString('latin1')).toBe('%PDF-');
    await context.close();
  });

  it('a crime analyst uploads a batch with a bad row, sees the row error, and the crime page draws the crime, R and the matched trails', async () => {
    const context = await browser.newContext();
    const page = await signIn(context, 'Crime analyst', 'ca-1');
    await page.getByRole('link', { name: 'Crime matching' }).click();
    await page.waitForURL(`${base}/console/crime`);
    await accessible(page, 'crime-01-batches');
    const W = { from: NOW - 100 * 60_000, to: NOW - 70 * 60_000 };
    const csv = [
      `NOTTINGHAMSHIRE,BIAD,,NOT20261202,CR/10,${compact(W.from)},${compact(W.to)},,,${C.lat},${C.lon},WGS84,rear door forced`,
      `NOTTINGHAMSHIRE,ZZ,,NOT20261202,CR/11,${compact(W.from)},${compact(W.to)},,,${C.lat},${C.lon},WGS84,unknown type`,
    ].join('\n');
    await page.getByLabel('Batch file (CSV)').setInputFiles({ name: 'NOT20261202.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Upload and match' }).click();
    await page.waitForURL(/\/console\/crime\/batches\/\d+$/);
    const summary = page.getByTestId('row-error-summary');
    await expect.poll(() => summary.textContent()).toMatch(/Row 2: .*crime type/);
    await accessible(page, 'crime-02-batch-row-errors');
    const batchId = /(\d+)$/.exec(page.url())![1]!;
    const run = (await db.pool.query(`SELECT id::text FROM crime_runs WHERE batch_id = $1`, [batchId])).rows[0].id as string;
    await runCrimeMatch(db.pool, run);
    // the page's script polls the progress and reloads once the run is done
    await expect.poll(() => page.getByTestId('progress').textContent(), { timeout: 10_000 }).toMatch(/Done, 1 of 1 crimes matched/);
    await page.getByRole('link', { name: 'CR/10' }).click();
    await page.waitForURL(/\/console\/crime\/crimes\/\d+$/);
    await expect.poll(() => page.locator('#crime-map').getAttribute('data-ready')).toBe('true');
    expect(await page.locator('#crime-map canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#crime-map .ol-scale-line').count()).toBeGreaterThan(0);
    // the crime circle and centre, and for each matched person a track and their deciding fixes
    expect(Number(await page.locator('#crime-map').getAttribute('data-features'))).toBeGreaterThan(2 + 2);
    expect(await page.getByTestId('match').count()).toBe(2);
    await accessible(page, 'crime-03-crime-map');
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    await context.close();
  });
});

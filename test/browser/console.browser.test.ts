import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from '@playwright/test';
import { adminPoster, authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * The console in a real browser: Debian's chromium (scripts/test.sh installs it; never a
 * downloaded browser), driven by Playwright against the service listening on loopback, with
 * axe-core on every page. Screenshots go to test-results/console/.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;
let alertId: string;
const requests: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const post = await adminPoster(svc);
  await post('/v1/subjects', { id: 'B-S1', display_name: 'Frank Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await post('/v1/subjects', { id: 'B-S2', display_name: 'Grace Other', cohort: 'flex', rag: 'green', offender_manager_ids: ['om-2'] });
  await post('/v1/devices', { id: 'B-D1', kind: 'gps' });
  const t0 = Date.now() - 2 * 3600_000;
  await post('/v1/subjects/B-S1/assignments', { device_id: 'B-D1', start: new Date(t0 - 3600_000).toISOString() });
  const fixes = [0, 1, 2].map((i) => ({ ts: new Date(t0 + i * 60_000).toISOString(), lat: 52.95 + i / 1e4, lon: -1.15, accuracy_m: 10 + i * 5, class: 'inside' }));
  for (const f of fixes) await db.pool.query(`INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) VALUES ('B-D1', 'gps', $1, $1::timestamptz + interval '4 seconds', $2, $3, $4, '{}')`, [f.ts, f.lat, f.lon, f.accuracy_m]);
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'exclusion_breach', subjectId: 'B-S1', deviceId: 'B-D1', zoneId: null, startedAt: new Date(t0), late: false, evidence: fixes as never }));
  alertId = (r as { alert: { id: string } }).alert.id;
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `${name}`);

describe('the console in a browser (Debian chromium, Playwright, axe-core)', () => {
  it('a manager signs in, sees only their caseload, opens an alert and acknowledges it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('request', (req) => requests.push(req.url()));

    await page.goto(`${base}/console/caseload`);
    await expect.poll(() => new URL(page.url()).pathname).toBe('/console/sign-in');
    await accessible(page, '01-sign-in');
    await page.getByRole('link', { name: 'Sign in with a role and user ID' }).click();
    await accessible(page, '02-dev-sign-in');
    await page.getByLabel('Offender manager').check();
    await page.getByLabel('User ID').fill('om-1');
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.waitForURL(`${base}/console/caseload`);
    const caseload = page.getByTestId('caseload');
    await expect.poll(() => caseload.textContent()).toContain('Frank Example');
    expect(await caseload.textContent()).not.toContain('Grace Other');
    await accessible(page, '03-caseload');

    await page.getByRole('link', { name: 'Open alerts' }).click();
    await page.waitForURL(`${base}/console/alerts`);
    await accessible(page, '04-alert-inbox');
    await page.getByRole('link', { name: 'Entered an exclusion zone' }).click();
    await page.waitForURL(`${base}/console/alerts/${alertId}`);
    expect(await page.getByTestId('evidence').locator('tbody tr').count()).toBe(3);
    // the evidence map: drawn by the bundled OpenLayers script (a canvas and a scale line), no tiles
    await expect.poll(() => page.locator('#alert-map').getAttribute('data-ready')).toBe('true');
    expect(await page.locator('#alert-map canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#alert-map .ol-scale-bar, #alert-map .ol-scale-line').count()).toBeGreaterThan(0);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await accessible(page, '05-alert');

    await page.getByLabel('Note (optional)').first().fill('Phoned Frank: on his way home');
    await page.getByRole('button', { name: 'Acknowledge alert' }).click();
    await page.waitForURL(`${base}/console/alerts/${alertId}`);
    await expect.poll(() => page.getByTestId('alert-status').textContent()).toBe('Acknowledged');
    await accessible(page, '06-alert-acknowledged');
    const api = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${alertId}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(api.json()).toMatchObject({ status: 'acknowledged', acknowledged_by: 'om-1' });

    // another manager's subject is a 404 page
    const res = await page.goto(`${base}/console/subjects/B-S2`);
    expect(res?.status()).toBe(404);
    await accessible(page, '07-not-found');

    // nothing was requested from outside the service, and the page's scripts ran under the CSP
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    expect(await page.evaluate(() => document.body.classList.contains('govuk-frontend-supported'))).toBe(true);
    await context.close();
  });
});

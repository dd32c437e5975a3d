import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { type Browser, type Page } from '@playwright/test';
import { adminPoster, authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, type TestService } from '../support/env.js';
import { startTestProvider, type TestProvider } from '../support/oidc.js';
import { freePort } from '../../scripts/stack/services.js';
import { DateTime } from 'luxon';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { ensureParams, saveDays } from '../../alcohol/alcohol.repo.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * The live inbox in a real browser (Debian's chromium, Playwright, axe-core): a manager signs in
 * through the in-process OpenID provider's own login and consent pages, keeps the inbox open, and
 * a breaching track published over MQTT (ingest, worker, alert feed all running) appears in it
 * within 5 s without a reload, announced in the aria-live region. Screenshots:
 * test-results/console/live-NN-*.png.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let idp: TestProvider;
let browser: Browser;
let pub: MqttClient;
let base: string;

const CAL_MONTH = DateTime.now().setZone('Europe/London').startOf('month').minus({ months: 1 });
const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  idp = await startTestProvider(`${base}/console/sign-in/callback`, { 'om-1': { role: 'offender_manager' } });
  const config = testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url, OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: idp.clientId, OIDC_CLIENT_SECRET: idp.clientSecret, CONSOLE_URL: `${base}/console` });
  svc = await startTestService(config, { ingest: true, worker: true, feed: true });
  await svc.app.listen({ port, host: '127.0.0.1' });
  const post = await adminPoster(svc);
  await post('/v1/subjects', { id: 'LB-S1', display_name: 'Frank Example', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] });
  await post('/v1/devices', { id: 'LB-D1', kind: 'gps' });
  // fitted 12 minutes ago, before the track's first fix (10 minutes ago), and silent for less
  // than NO_SIGNAL_MS (15 minutes): no health alert of its own reaches the inbox during the test
  await post('/v1/subjects/LB-S1/assignments', { device_id: 'LB-D1', start: new Date(Date.now() - 12 * 60_000).toISOString() });
  await post('/v1/subjects/LB-S1/zones', { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.15, 52.95] }, properties: { kind: 'exclusion', name: 'victim address', radius_m: 300, grace_s: 60 } });
  // a person with an alcohol tag and a month of day statuses, for the sober-day calendar
  await post('/v1/subjects', { id: 'LB-S2', display_name: 'Gina Example', cohort: 'fixed', rag: 'amber', offender_manager_ids: ['om-1'] });
  await post('/v1/devices', { id: 'LB-A1', kind: 'alcohol' });
  const fitted = await post('/v1/subjects/LB-S2/assignments', { device_id: 'LB-A1', start: CAL_MONTH.minus({ days: 3 }).toISO()! });
  // taken off at the start of this month: the calendar's month stays, and no no_signal alert of a
  // silent tag races the breach into the inbox
  await post(`/v1/subjects/LB-S2/assignments/${fitted.id}/end`, { end: CAL_MONTH.plus({ months: 1 }).toISO()! });
  const version = await ensureParams(db.pool, DEFAULT_PARAMS);
  const statuses = ['sober', 'sober', 'drinking', 'sober', 'tamper', 'not_monitored', 'sober', 'sober', 'sober', 'sober'] as const;
  await saveDays(db.pool, 'LB-S2', statuses.map((status, i) => ({ date: CAL_MONTH.plus({ days: i }).toISODate()!, status, covered_minutes: 1440, drinking_events: 0, tampers: 0, reviewed_status: status, pending_events: 0, events: [], reviews: {} })) as never, version);
  pub = await mqtt.connectAsync(broker.url, { clientId: 'live-browser-test-publisher' });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pub?.endAsync();
  await svc?.stop();
  await idp?.stop();
  broker?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `${name}`);

describe('the live inbox in a browser', () => {
  it('signs in through the OpenID provider, shows a breach published over MQTT within 5 s without reload, announces it, and acknowledges it', async () => {
    const context = await browser.newContext();
    // the provider's development pages import a web font: nothing may leave loopback
    const outside: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(base) || url.startsWith(idp.issuer)) return route.continue();
      outside.push(`${url} (from ${route.request().frame().url()})`);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    // sign in: the console's start page, the provider's login and consent pages, back to the caseload
    await page.goto(`${base}/console`);
    await page.waitForURL(`${base}/console/sign-in`);
    await accessible(page, 'live-01-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.locator('input[name="login"]').fill('om-1');
    await page.locator('input[name="password"]').fill('any');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`${base}/console/caseload`);
    expect(await page.getByTestId('caseload').textContent()).toContain('Frank Example');
    await accessible(page, 'live-02-caseload');

    // the inbox, open and listening
    await page.getByRole('link', { name: 'Open alerts' }).click();
    await page.waitForURL(`${base}/console/alerts`);
    await expect.poll(() => page.locator('table[data-testid="inbox"]').getAttribute('data-live')).toBe('true');
    expect(await page.locator('table[data-testid="inbox"] tbody tr').count()).toBe(0);
    await accessible(page, 'live-03-inbox-empty');
    let navigations = 0;
    page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);

    // a breaching track over MQTT: out, five fixes in the exclusion zone over 2 minutes, out again
    const t0 = Date.now() - 10 * 60_000;
    const walk = [OUT, OUT, IN, IN, IN, IN, IN, OUT, OUT].map((p, i) => ({ ts: new Date(t0 + i * 30_000).toISOString(), ...p, accuracy_m: 10 + i }));
    const published = Date.now();
    await pub.publishAsync('tags/v1/LB-D1/gps', JSON.stringify(walk), { qos: 1 });
    const row = page.locator('table[data-testid="inbox"] tbody tr').first();
    await row.waitFor({ timeout: 5_000 });
    const shownAfterMs = Date.now() - published;
    expect(await row.textContent()).toContain('Entered an exclusion zone');
    expect(await row.textContent()).toContain('Frank Example');
    await expect.poll(() => page.getByTestId('inbox-announce').textContent(), { timeout: 2_000 }).toBe('New high alert: Entered an exclusion zone, Frank Example');
    expect(shownAfterMs).toBeLessThan(5_000);
    expect(navigations).toBe(0); // no reload
    await accessible(page, 'live-04-inbox-new-alert');

    // open it: the evidence map with error circles and the fix table
    await row.getByRole('link', { name: 'Entered an exclusion zone' }).click();
    await page.waitForURL(/\/console\/alerts\/[0-9a-f-]{36}$/);
    const alertId = new URL(page.url()).pathname.split('/').pop()!;
    await expect.poll(() => page.locator('#alert-map').getAttribute('data-ready')).toBe('true');
    expect(await page.locator('#alert-map canvas').count()).toBeGreaterThan(0);
    const mapData = JSON.parse((await page.locator('#alert-map-data').textContent())!) as { fixes: Array<{ accuracy_m: number; class: string }>; zone: unknown };
    expect(mapData.zone).not.toBeNull();
    expect(mapData.fixes.length).toBeGreaterThan(0);
    expect(mapData.fixes.every((f) => f.accuracy_m > 0)).toBe(true); // each is drawn as its error circle
    expect(await page.getByRole('list', { name: 'Map key' }).textContent()).toContain('error circle');
    expect(await page.getByTestId('evidence').locator('tbody tr').count()).toBe(mapData.fixes.length);
    await accessible(page, 'live-05-alert');

    // a second inbox, open while the alert is acknowledged in the first tab: its row changes in place
    const other = await context.newPage();
    other.on('pageerror', (e) => errors.push(e.message));
    await other.goto(`${base}/console/alerts`);
    await expect.poll(() => other.locator('table[data-testid="inbox"]').getAttribute('data-live')).toBe('true');
    expect(await other.locator(`tr[data-alert-id="${alertId}"] [data-testid="inbox-status"]`).textContent()).toContain('Open');

    // acknowledge; the API shows it acknowledged
    await page.getByRole('button', { name: 'Acknowledge alert' }).click();
    await page.waitForURL(`${base}/console/alerts/${alertId}`);
    await expect.poll(() => page.getByTestId('alert-status').textContent()).toBe('Acknowledged');
    const api = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${alertId}`, headers: await authHeader('offender_manager', 'om-1') });
    expect(api.json()).toMatchObject({ status: 'acknowledged', acknowledged_by: 'om-1' });
    await accessible(page, 'live-06-alert-acknowledged');
    await expect.poll(() => other.locator(`tr[data-alert-id="${alertId}"] [data-testid="inbox-status"]`).textContent(), { timeout: 5_000 }).toContain('Acknowledged');
    expect(await other.getByTestId('inbox-announce').textContent()).toBe('Alert acknowledged: Entered an exclusion zone, Frank Example');
    await accessible(other, 'live-07-inbox-status-changed');

    // the sober-day calendar of a person with an alcohol tag: a table of days with letters, a key, the rate in words
    await page.goto(`${base}/console/subjects/LB-S2?month=${CAL_MONTH.toFormat('yyyy-MM')}`);
    const calendar = page.getByTestId('sober-calendar');
    expect(await calendar.getByRole('table').locator('td[data-status="drinking"]').textContent()).toContain('Drinking');
    expect(await page.getByTestId('sober-rate').textContent()).toContain('7 sober days of 9 monitored days');
    expect(await page.getByTestId('sober-legend').textContent()).toContain('Not monitored');
    await accessible(page, 'live-08-subject-calendar');
    await page.getByRole('link', { name: /Next month/ }).click();
    await page.waitForURL(/month=/);
    expect(await page.getByTestId('sober-calendar').getByRole('heading', { level: 2 }).textContent()).toContain(CAL_MONTH.plus({ months: 1 }).toFormat('LLLL yyyy'));

    // only the provider's own page tried to leave loopback (its web font, blocked); no console page did
    expect(outside.filter((u) => !u.includes(`(from ${idp.issuer}`))).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });
});

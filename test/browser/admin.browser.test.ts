import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type BrowserContext, type Page } from '@playwright/test';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * The admin pages in a real browser (Debian's chromium, as test/browser/console.browser.test.ts):
 * register a device and copy its password with the copy button, fit it, register a webhook as a
 * manager, search the audit log; axe-core on every page. Screenshots: test-results/console/admin-*.png.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;
const requests: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const res = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: await authHeader('admin'), payload: { id: 'BA-S1', display_name: 'Hana Example', cohort: 'flex', rag: 'amber', offender_manager_ids: ['om-1'] } });
  if (res.statusCode !== 201) throw new Error(res.body);
  await db.pool.query(`INSERT INTO rejections (topic, device_id, reason, raw) VALUES ('tags/v1/GHOST-1/gps', 'GHOST-1', 'unknown_device', '{"ts":"x"}')`);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `admin-${name}`);

async function signIn(role: string, userId: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('request', (req) => requests.push(req.url()));
  await page.goto(`${base}/console/sign-in/dev`);
  await page.getByLabel(role).check();
  await page.getByLabel('User ID').fill(userId);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState('load');
  return { context, page };
}

describe('the admin pages in a browser (Debian chromium, Playwright, axe-core)', () => {
  it('an admin registers a device and copies its password, fits it, and searches the audit log; a manager registers a webhook', async () => {
    const { context, page } = await signIn('Admin', 'adm-1');
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.waitForURL(`${base}/console/admin/devices`);
    await accessible(page, '01-devices-empty');

    // register: the API's validation error first, then the device
    await page.getByRole('button', { name: 'Register a device' }).click();
    await page.waitForURL(`${base}/console/admin/devices/new`);
    await accessible(page, '02-device-new');
    await page.getByLabel('Device ID').fill('no');
    await page.getByRole('button', { name: 'Register device' }).click();
    await expect.poll(() => page.locator('.govuk-error-summary').textContent()).toContain('Enter a device ID of 3 to 64');
    await accessible(page, '03-device-error');
    await page.getByLabel('Device ID').fill('BA-D1');
    await page.getByLabel('GPS', { exact: true }).check();
    await page.getByRole('button', { name: 'Register device' }).click();
    await page.getByRole('heading', { name: 'Device registered' }).waitFor();
    const password = await page.getByLabel('MQTT password').inputValue();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await accessible(page, '04-device-registered');
    // the copy button (shown by the bundled script) puts the password on the clipboard, and says so
    await page.getByRole('button', { name: 'Copy MQTT password' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Copied');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(password);
    // opening the result's address again shows the device list, never the password
    await page.goto(page.url());
    expect(await page.content()).not.toContain(password);
    expect(await page.getByTestId('devices').textContent()).toContain('BA-D1');

    // fit it to a subject
    await page.getByRole('link', { name: 'Subjects' }).click();
    await accessible(page, '05-subjects');
    await page.getByRole('link', { name: 'Hana Example' }).click();
    await page.waitForURL(`${base}/console/admin/subjects/BA-S1`);
    await accessible(page, '06-subject');
    await page.getByLabel('Device').selectOption('BA-D1');
    await page.getByLabel('Fitted from').fill('2026-03-01T10:00');
    await page.getByRole('button', { name: 'Fit device' }).click();
    await expect.poll(() => page.getByTestId('fittings').textContent()).toContain('BA-D1');
    await accessible(page, '07-subject-fitted');
    const fitted = await svc.app.inject({ method: 'GET', url: '/v1/subjects/BA-S1/assignments', headers: await authHeader('admin') });
    expect(fitted.json().items).toEqual([expect.objectContaining({ device_id: 'BA-D1', start: '2026-03-01T10:00:00.000Z', end: null })]);
    await page.getByRole('button', { name: 'Save changes' }).waitFor();

    await page.getByRole('link', { name: 'Rejections' }).click();
    expect(await page.getByTestId('rejections').textContent()).toContain('unknown_device');
    await accessible(page, '08-rejections');
    await page.getByRole('link', { name: 'Alert emails' }).click();
    await accessible(page, '09-email-subscriptions');

    // a manager registers a webhook; its secret is copied the same way
    const om = await signIn('Offender manager', 'om-1');
    await om.page.getByRole('link', { name: 'Webhooks' }).click();
    await om.page.waitForURL(`${base}/console/webhooks`);
    await accessible(om.page, '10-webhooks-manager');
    await om.page.getByLabel('Address (URL)').fill('http://127.0.0.1:9/tagwatch');
    await om.page.getByRole('button', { name: 'Register webhook' }).click();
    await om.page.getByRole('heading', { name: 'Webhook registered' }).waitFor();
    const secret = await om.page.getByLabel('Signing secret').inputValue();
    await accessible(om.page, '11-webhook-registered');
    await om.page.getByRole('button', { name: 'Copy signing secret' }).click();
    await expect.poll(() => om.page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await om.page.getByRole('link', { name: 'Alert emails' }).click();
    await accessible(om.page, '12-alert-emails');
    await om.context.close();

    // the admin sees it among all webhooks, and finds the registration in the audit log
    await page.getByRole('link', { name: 'Webhooks' }).click();
    expect(await page.getByTestId('webhooks').textContent()).toContain('om-1 (offender manager)');
    await accessible(page, '13-webhooks-admin');
    await page.getByRole('link', { name: 'Audit' }).click();
    await accessible(page, '14-audit');
    await page.getByLabel('User ID').fill('om-1');
    await page.getByLabel('Action').fill('webhook.create');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByTestId('audit').textContent()).toContain('webhook.create');
    await accessible(page, '15-audit-results');
    const searches = await db.pool.query(`SELECT detail FROM audit_log WHERE actor = 'adm-1' AND action = 'audit.read'`);
    expect(searches.rows.map((r) => r.detail)).toContainEqual(expect.objectContaining({ via: 'console.audit', filter_action: 'webhook.create' }));

    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    await context.close();
  }, 120_000);
});

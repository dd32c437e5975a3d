import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type BrowserContext, type Page } from '@playwright/test';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { COORDS, NAMES, SUBJECT_IDS, seedOversight, type Seeded } from '../console/oversight-data.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * The supervisor's and the analyst's pages in Debian's chromium (as console.browser.test.ts):
 * charts drawn, the review form's error summary and a saved review, the analyst's rates and
 * intervals, and no display name, subject id, pseudonymous reference or coordinate in the DOM
 * or in any response the analyst's browser receives. axe-core on every page; screenshots to
 * test-results/console/oversight-NN-*.png.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;
let seeded: Seeded;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  seeded = await seedOversight(db.pool);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `oversight-${name}`);

async function signIn(context: BrowserContext, label: string, id: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${base}/console/sign-in/dev`);
  await page.getByLabel(label, { exact: true }).check();
  await page.getByLabel('User ID').fill(id);
  await page.getByRole('button', { name: 'Sign in' }).click();
  return page;
}

describe('oversight pages in a browser (Debian chromium, Playwright, axe-core)', () => {
  it('a supervisor sees escalations, the fatigue charts and the review queue, and reviews an event', async () => {
    const context = await browser.newContext();
    const requests: string[] = [];
    context.on('request', (r) => requests.push(r.url()));
    const page = await signIn(context, 'Supervisor', 'sup-b');
    await page.waitForURL(`${base}/console/supervisor/escalations`);
    expect(await page.getByTestId('escalations').locator('tbody tr').count()).toBe(1);
    await accessible(page, '01-escalations');

    await page.getByRole('link', { name: 'Alert fatigue' }).click();
    await page.waitForURL(/\/console\/supervisor\/alert-fatigue$/);
    expect(await page.getByTestId('fatigue').locator('tbody tr').count()).toBeGreaterThanOrEqual(3);
    for (const id of ['chart-per-day', 'chart-ack', 'chart-false']) {
      const svg = page.getByTestId(id).locator('svg[role="img"]');
      expect(await svg.count(), id).toBe(1);
      expect((await svg.boundingBox())!.height, id).toBeGreaterThan(40);
    }
    expect(await page.getByRole('img', { name: /Time to acknowledge by offender manager/ }).count()).toBe(1);
    await accessible(page, '02-alert-fatigue');

    await page.getByRole('link', { name: 'Alcohol review' }).click();
    await page.waitForURL(`${base}/console/supervisor/alcohol-review`);
    expect(await page.getByTestId('review-queue').locator('tbody tr').count()).toBe(2);
    await accessible(page, '03-alcohol-review-queue');
    await page.getByTestId('review-queue').getByRole('link').first().click();
    await page.getByLabel('Why are you opening this record?').fill('weekly alcohol review');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect.poll(() => page.getByTestId('chart-tac').locator('svg').count()).toBe(1);
    expect(await page.getByTestId('chart-tac').locator('.console-chart-mark').count()).toBe(3);
    expect(await page.getByTestId('chart-tac').locator('.console-chart-ref').count()).toBe(1);
    await accessible(page, '04-alcohol-review');

    await page.getByRole('button', { name: 'Save review' }).click();
    await expect.poll(() => page.locator('.govuk-error-summary').count()).toBe(1);
    await accessible(page, '05-alcohol-review-errors');
    await page.locator('.govuk-error-summary').getByRole('link', { name: /Select whether/ }).click();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('decision');
    await page.getByLabel('Confirmed', { exact: true }).check();
    await page.getByLabel('Why').fill('steady rise and fall over three hours');
    await page.getByRole('button', { name: 'Save review' }).click();
    await page.waitForURL(/\/console\/supervisor\/alcohol-review\?done=/);
    await expect.poll(() => page.getByTestId('review-saved').count()).toBe(1);
    expect(await page.getByTestId('review-queue').locator('tbody tr').count()).toBe(1);
    await accessible(page, '06-alcohol-review-saved');
    const api = await svc.app.inject({ method: 'GET', url: `/v1/alerts/${seeded.events[0]}`, headers: await authHeader('supervisor', 'sup-b') });
    expect(api.json().review).toMatchObject({ status: 'confirmed', by: 'sup-b' });

    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    await context.close();
  });

  it('an analyst sees the cohort rates and their intervals, and no name, subject id or coordinate in the DOM or any response', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const bodies: Array<{ url: string; body: string }> = [];
    const pending: Array<Promise<void>> = [];
    context.on('response', (res) => {
      pending.push(res.body().then((b) => void bodies.push({ url: res.url(), body: b.toString('utf8') }), () => undefined));
    });
    const page = await signIn(context, 'Analyst', 'an-b');
    await page.waitForURL(/\/console\/analyst\/sober-days$/);
    await accessible(page, '07-sober-days-default');
    await page.getByLabel('First month').fill('2026-09');
    await page.getByLabel('Last month').fill('2026-11');
    await page.getByRole('button', { name: 'Show figures' }).click();
    await page.waitForURL(/from=2026-09/);
    const rates = page.getByTestId('rates');
    expect(await rates.locator('tbody tr').count()).toBe(9);
    expect(await rates.locator('tr[data-cohort="flex"][data-month="2026-09"] [data-field="rate"]').textContent()).toBe('78.2 %');
    expect(await rates.locator('tr[data-cohort="flex"][data-month="2026-09"] [data-field="ci"]').textContent()).toMatch(/^\d+\.\d % to \d+\.\d %$/);
    expect(await page.getByTestId('comparison').locator('thead th').allTextContents()).toEqual(['Month', 'Fixed', 'Flex', 'Free']);
    const chart = page.getByTestId('chart-rates');
    // fixed has days in November only, flex and free in September and October only: five bars, each with its interval
    expect(await chart.locator('.console-chart-error').count()).toBe(5);
    expect(await chart.locator('.console-chart-missing').count()).toBe(4);
    await accessible(page, '08-sober-days');

    await page.getByLabel('Reviewed').check();
    await page.getByRole('button', { name: 'Show figures' }).click();
    await page.waitForURL(/basis=reviewed/);
    await accessible(page, '09-sober-days-reviewed');
    // the CSV through the page's own network (fetch), so its body is captured as well
    const csv = await page.evaluate(async (href) => (await fetch(href)).text(), (await page.getByRole('link', { name: /Download these figures as CSV/ }).getAttribute('href'))!);
    expect(csv.split('\r\n')[0]).toMatch(/^"cohort","month","subjects"/);

    const refs = (await svc.app.inject({ method: 'GET', url: '/v1/sobriety?from=2026-09-01&to=2026-12-01', headers: await authHeader('analyst', 'an-b') })).json().rows.map((r: { subject: string }) => r.subject);
    const forbidden = [...NAMES, ...SUBJECT_IDS, ...refs, ...COORDS.flatMap((c) => [String(c.lat).slice(0, 6), String(c.lon).slice(0, 6)])];
    const dom = await page.content();
    await Promise.all(pending);
    expect(bodies.length).toBeGreaterThan(5);
    expect(bodies.some((b) => b.url.includes('/console/analyst/sober-days.csv'))).toBe(true);
    for (const f of forbidden) {
      expect(dom.includes(f), `DOM has ${f}`).toBe(false);
      expect(bodies.filter((b) => b.body.includes(f)).map((b) => b.url), `responses with ${f}`).toEqual([]);
    }
    await context.close();
  });
});

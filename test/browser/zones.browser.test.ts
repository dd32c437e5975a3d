import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from '@playwright/test';
import { adminPoster, authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * Drawing zones on the map of the console's zone form, with the mouse, in Debian's chromium
 * (as console.browser.test.ts): the drawn shapes fill the form, are saved through the API's
 * zone code, and the API holds them; axe-core on every page; screenshots in test-results/console/.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;
const requests: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const post = await adminPoster(svc);
  await post('/v1/subjects', { id: 'BZ-S1', display_name: 'Hana Example', cohort: 'fixed', rag: 'amber', offender_manager_ids: ['om-1'] });
  // a zone the person already has: drawn for reference, and the map opens around it
  await post('/v1/subjects/BZ-S1/zones', { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.15, 52.95] }, properties: { kind: 'inclusion', name: 'Home', radius_m: 120 } });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `zones-${name}`);

const zones = async () => {
  const res = await svc.app.inject({ method: 'GET', url: '/v1/subjects/BZ-S1/zones', headers: await authHeader('offender_manager', 'om-1') });
  return (res.json() as { features: Array<{ id: string; geometry: { type: string; coordinates: number[][][] | number[] }; properties: Record<string, unknown> }> }).features;
};

/** The map's canvas box in the viewport (scrolled into view), once the page script has drawn it. */
async function mapBox(page: Page) {
  await expect.poll(() => page.locator('#zone-map').getAttribute('data-ready')).toBe('true');
  await page.locator('#zone-map').scrollIntoViewIfNeeded();
  const box = await page.locator('#zone-map canvas').first().boundingBox();
  if (!box) throw new Error('no map canvas');
  return box;
}

/** Clicks at map pixels (offsets from the canvas centre), pausing so that no two clicks make a double click. */
async function clickAt(page: Page, box: { x: number; y: number; width: number; height: number }, points: Array<[number, number]>) {
  for (const [dx, dy] of points) {
    await page.mouse.click(box.x + box.width / 2 + dx, box.y + box.height / 2 + dy);
    await page.waitForTimeout(350);
  }
}

describe('zones drawn on the map in a browser (Debian chromium, Playwright, axe-core)', () => {
  it('draws a circle and a polygon with the mouse, saves them, and shows a self-intersecting polygon’s error', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('request', (req) => requests.push(req.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    await page.goto(`${base}/console/sign-in/dev`);
    await page.getByLabel('Offender manager').check();
    await page.getByLabel('User ID').fill('om-1');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/console/caseload`);

    await page.goto(`${base}/console/subjects/BZ-S1`);
    await accessible(page, '01-subject-actions');
    await page.getByRole('button', { name: 'Add a zone' }).click();
    await page.waitForURL(`${base}/console/subjects/BZ-S1/zones/new`);
    await mapBox(page);
    await accessible(page, '02-new-form');

    // a circle: the centre, then the edge, 80 px east
    await page.getByRole('button', { name: 'Draw circle' }).click();
    expect(await page.getByRole('button', { name: 'Draw circle' }).getAttribute('aria-pressed')).toBe('true');
    let box = await mapBox(page);
    await clickAt(page, box, [[-150, 0], [-70, 0]]);
    await expect.poll(() => page.locator('#radius_m').inputValue()).not.toBe('');
    expect(await page.getByRole('radio', { name: 'Circle' }).isChecked()).toBe(true);
    const radius = Number(await page.locator('#radius_m').inputValue());
    const lat = Number(await page.locator('#centre_lat').inputValue());
    const lon = Number(await page.locator('#centre_lon').inputValue());
    expect(radius).toBeGreaterThan(5);
    expect(radius).toBeLessThan(2000);
    expect(Math.abs(lat - 52.95)).toBeLessThan(0.05);
    expect(Math.abs(lon + 1.15)).toBeLessThan(0.05);
    await page.getByLabel('Name (optional)').fill('Shop');
    await page.getByLabel('Exclusion zone').check();
    await accessible(page, '03-circle-drawn');
    await page.getByRole('button', { name: 'Save zone' }).click();
    await page.waitForURL(`${base}/console/subjects/BZ-S1`);
    const circle = (await zones()).find((z) => z.properties.name === 'Shop');
    expect(circle).toMatchObject({ geometry: { type: 'Point', coordinates: [lon, lat] }, properties: { kind: 'exclusion', radius_m: radius, created_by: 'om-1' } });

    // a polygon whose edges cross (a bow tie), finished by clicking the first corner again
    await page.getByRole('button', { name: 'Add a zone' }).click();
    await page.waitForURL(`${base}/console/subjects/BZ-S1/zones/new`);
    await page.getByRole('button', { name: 'Draw polygon' }).click();
    box = await mapBox(page);
    await clickAt(page, box, [[40, -60], [160, 60], [160, -60], [40, 60], [40, -60]]);
    await expect.poll(() => page.locator('#vertices').inputValue()).toMatch(/^(.+\n){3}.+$/);
    expect(await page.getByRole('radio', { name: 'Polygon' }).isChecked()).toBe(true);
    await page.getByLabel('Name (optional)').fill('Park');
    await page.getByLabel('Exclusion zone').check();
    await page.getByRole('button', { name: 'Save zone' }).click();
    const summary = page.locator('.govuk-error-summary');
    await expect.poll(() => summary.count()).toBe(1);
    expect(await summary.textContent()).toMatch(/intersects itself/);
    expect(await summary.getByRole('link').getAttribute('href')).toBe('#vertices');
    expect(await page.locator('#name').inputValue()).toBe('Park');
    expect((await zones()).some((z) => z.properties.name === 'Park')).toBe(false);
    await mapBox(page);
    await accessible(page, '04-self-intersecting-error');

    // drawn again as a proper polygon: saved
    await page.getByRole('button', { name: 'Draw polygon' }).click();
    box = await mapBox(page);
    await clickAt(page, box, [[40, -60], [160, -60], [160, 60], [40, 60], [40, -60]]);
    await expect.poll(() => page.locator('#vertices').inputValue()).toMatch(/^(.+\n){3}.+$/);
    const typed = (await page.locator('#vertices').inputValue()).split('\n').map((l) => l.split(', ').map(Number));
    await page.getByRole('button', { name: 'Save zone' }).click();
    await page.waitForURL(`${base}/console/subjects/BZ-S1`);
    const polygon = (await zones()).find((z) => z.properties.name === 'Park')!;
    expect(polygon.geometry.type).toBe('Polygon');
    const ring = polygon.geometry.coordinates[0] as unknown as number[][];
    expect(ring).toEqual([...typed.map(([y, x]) => [x, y]), [typed[0]![1], typed[0]![0]]]);

    // the change and delete pages of the saved polygon
    await page.getByRole('link', { name: 'Change the zone Park' }).click();
    await mapBox(page);
    expect(await page.locator('#vertices').inputValue()).toBe(typed.map((p) => p.join(', ')).join('\n'));
    await accessible(page, '05-edit-form');
    await page.goto(`${base}/console/subjects/BZ-S1`);
    await page.getByRole('link', { name: 'Delete the zone Park' }).click();
    await accessible(page, '06-delete-confirmation');

    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    await context.close();
  }, 120_000);
});

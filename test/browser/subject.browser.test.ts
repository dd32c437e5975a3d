import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from '@playwright/test';
import { adminPoster, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { checkPage, launchChromium } from '../support/browser.js';

/**
 * The subject page's map and replay in Debian's chromium (never a downloaded browser): the
 * track drawn, the slider highlighting and announcing the fix at its index, play/pause, axe-core.
 * Screenshots: test-results/console/subject-NN-name.png.
 */
const MIN = 60_000;
const N = 240;
/** fixes at one a minute, the last 5 minutes ago (inside the page's default period, the last 24 h) */
const T0 = Math.floor((Date.now() - (N + 5) * MIN) / 1000) * 1000;
const tsAt = (i: number) => new Date(T0 + i * MIN).toISOString();

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let browser: Browser;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const post = await adminPoster(svc);
  await post('/v1/subjects', { id: 'R-S1', display_name: 'Harry Example', cohort: 'fixed', rag: 'amber', offender_manager_ids: ['om-1'] });
  await post('/v1/devices', { id: 'R-D1', kind: 'gps' });
  await post('/v1/subjects/R-S1/assignments', { device_id: 'R-D1', start: new Date(T0 - 3600_000).toISOString() });
  // a walk north-east with a varying accuracy
  await db.pool.query(
    `INSERT INTO readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data)
     SELECT 'R-D1', 'gps', to_timestamp(($1::float8 + i * 60000) / 1000), to_timestamp(($1::float8 + i * 60000) / 1000), 52.95 + i * 2e-5, -1.15 + i * 3e-5, 8 + i % 30, '{}'
       FROM generate_series(0, $2::int - 1) AS i`,
    [T0, N],
  );
  await post('/v1/subjects/R-S1/zones', { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.15, 52.95] }, properties: { kind: 'inclusion', name: 'Home', radius_m: 60, schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '20:00', end: '06:00' }] } });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await db?.drop();
});

const accessible = (page: Page, name: string) => checkPage(page, `${name}`);

/** The fix the status text announces: its index and its device time (the `<time datetime>`). */
async function announced(page: Page): Promise<{ index: number; ts: string | null; text: string }> {
  const status = page.getByTestId('replay-status');
  return { index: Number(await status.getAttribute('data-index')), ts: await status.locator('time').getAttribute('datetime'), text: (await status.textContent()) ?? '' };
}

describe('the subject page in a browser: track and replay', () => {
  it('draws the track, and the slider highlights and announces the fix at its index', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (req) => requests.push(req.url()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/console/sign-in/dev`);
    await page.getByLabel('Offender manager').check();
    await page.getByLabel('User ID').fill('om-1');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/console/caseload`);

    await page.goto(`${base}/console/subjects/R-S1`);
    await expect.poll(() => page.locator('#subject-map').getAttribute('data-ready'), { timeout: 15_000 }).toBe('true');
    // one track request (the page's preload is the one the script uses), so one audit row of the read
    expect(requests.filter((u) => u.startsWith(`${base}/console/subjects/R-S1/track?from=`))).toHaveLength(1);
    const reads = await db.pool.query(`SELECT detail FROM audit_log WHERE actor = 'om-1' AND action = 'track.read' AND detail->>'via' = 'console.replay'`);
    expect(reads.rows).toEqual([{ detail: expect.objectContaining({ fixes: N }) }]);
    // the map's canvas has been drawn on (the track, the zone, the highlighted fix)
    const painted = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLCanvasElement>('#subject-map canvas')].reduce((n, c) => {
        const d = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
        let k = 0;
        if (d) for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) k++;
        return n + k;
      }, 0),
    );
    expect(painted).toBeGreaterThan(1000);
    expect(await page.locator('#subject-map .ol-scale-line').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('zones').textContent()).toContain('Monday to Friday, 20:00 to 06:00 the next day');
    const slider = page.getByLabel('Location shown (move the slider or use the arrow keys)');
    await expect.poll(() => slider.isVisible()).toBe(true);
    expect(await slider.getAttribute('max')).toBe(String(N - 1));
    expect(await announced(page)).toMatchObject({ index: 0, ts: tsAt(0) });
    await accessible(page, 'subject-01-map');

    // the keyboard: End, then back three
    await slider.focus();
    await page.keyboard.press('End');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    expect(await slider.inputValue()).toBe(String(N - 4));
    expect(await announced(page)).toMatchObject({ index: N - 4, ts: tsAt(N - 4) });
    expect(await page.locator('#subject-map').getAttribute('data-highlighted')).toBe(String(N - 4));
    expect((await announced(page)).text).toContain(`accuracy ${8 + ((N - 4) % 30)} m`);
    // dragged (or set) to any index: the announced time is that fix's
    for (const i of [17, 123, 200]) {
      await slider.fill(String(i));
      const a = await announced(page);
      expect(a, `slider at ${i}`).toMatchObject({ index: i, ts: tsAt(i) });
      expect(await page.locator('#subject-map').getAttribute('data-highlighted')).toBe(String(i));
      expect(a.text).toContain(`position ${(52.95 + i * 2e-5).toFixed(5)}, ${(-1.15 + i * 3e-5).toFixed(5)}`);
    }

    // play at 600× (10 fixes a second), then pause: the slider and the announcement moved on together
    await slider.fill('0');
    await page.getByLabel('Speed').selectOption('600');
    await page.getByRole('button', { name: 'Play' }).click();
    await page.waitForTimeout(1500);
    await page.getByRole('button', { name: 'Pause' }).click();
    const after = await announced(page);
    expect(after.index).toBeGreaterThan(5);
    expect(Number(await slider.inputValue())).toBe(after.index);
    expect(after.ts).toBe(tsAt(after.index));
    await accessible(page, 'subject-02-replay');

    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith(base))).toEqual([]);
    await context.close();
  }, 60_000);
});

import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from '@playwright/test';
import { summarize, type Summary } from '../common/runner.js';
import type { Cleanup } from '../common/setup.js';

/**
 * The subject page in Debian's chromium (headless, never a downloaded browser), measured with the
 * Performance API in the page: navigation start → the map drawn with the track (the page
 * script's `tagwatch:track-drawn` mark, set on the map's first `rendercomplete` after the track
 * was added), and replay frame rates from requestAnimationFrame timestamps.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launch(cleanups: Cleanup[]): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (the bench never downloads one)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  cleanups.push({ what: 'chromium', run: () => browser.close() });
  return browser;
}

export async function signedIn(browser: Browser, base: string, cookie: string, token: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addCookies([{ name: cookie, value: token, url: base }]);
  return context;
}

export interface PageLoads {
  /** navigation start → track drawn, ms */
  drawn: Summary & { p95: number };
  /** navigation start → DOMContentLoaded, ms (the server's page and the parse) */
  dom: Summary & { p95: number };
  /** the page script's track request → its answer parsed, ms (p50) */
  load: number;
  /** answer parsed → features made and the view fitted (script), ms (p50) */
  add: number;
  /** features made → map drawn with the track (OpenLayers' render), ms (p50) */
  draw: number;
  fixes: number;
  trackBytes: number;
}

const p95 = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? NaN;
};

/** Loads `url` `loads` times (after one warm-up load), each in a fresh page (cold JS heap, warm HTTP cache as a returning user has). */
export async function measurePageLoads(context: BrowserContext, url: string, loads: number): Promise<PageLoads> {
  const drawn: number[] = [];
  const dom: number[] = [];
  const load: number[] = [];
  const add: number[] = [];
  const draw: number[] = [];
  let fixes = 0;
  let trackBytes = 0;
  for (let k = 0; k <= loads; k++) {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('response', async (res) => {
      if (res.url().includes('/track?')) trackBytes = (await res.body()).length;
    });
    const r = await page.goto(url);
    if (!r || r.status() !== 200) throw new Error(`${url}: ${r?.status()}`);
    await page.waitForFunction(() => document.getElementById('subject-map')?.dataset.ready === 'true', undefined, { timeout: 30_000 });
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    const m = await page.evaluate(() => ({
      drawn: performance.getEntriesByName('tagwatch:track-drawn')[0]?.startTime ?? NaN,
      requested: performance.getEntriesByName('tagwatch:track-requested')[0]?.startTime ?? NaN,
      loaded: performance.getEntriesByName('tagwatch:track-loaded')[0]?.startTime ?? NaN,
      added: performance.getEntriesByName('tagwatch:track-added')[0]?.startTime ?? NaN,
      dom: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).domContentLoadedEventEnd,
      max: Number((document.getElementById('replay-position') as HTMLInputElement | null)?.max ?? -1) + 1,
    }));
    fixes = m.max;
    if (k > 0) {
      drawn.push(m.drawn);
      dom.push(m.dom);
      load.push(m.loaded - m.requested);
      add.push(m.added - m.loaded);
      draw.push(m.drawn - m.added);
    }
    await page.close();
  }
  return { drawn: { ...summarize(drawn), p95: p95(drawn) }, dom: { ...summarize(dom), p95: p95(dom) }, load: summarize(load).p50, add: summarize(add).p50, draw: summarize(draw).p50, fixes, trackBytes };
}

export interface FrameRate {
  fps: number;
  /** frame interval p95, ms */
  p95: number;
  /** frames that took more than 2 × 1/60 s */
  long: number;
  frames: number;
  /** replay positions (fix indices) passed */
  stepped: number;
}

/**
 * On the loaded subject page: (1) `play` at 600× for `ms`; (2) the slider stepped by one fix on
 * every frame for `ms` (the highlight and the announcement change every frame: the worst case).
 * Frame intervals come from requestAnimationFrame timestamps in the page.
 */
export async function measureReplay(context: BrowserContext, url: string, ms: number): Promise<{ play: FrameRate; step: FrameRate }> {
  const page = await context.newPage();
  // tsx (esbuild keepNames) wraps the named functions of the evaluated code below in __name()
  await page.addInitScript('globalThis.__name = (f) => f');
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('subject-map')?.dataset.ready === 'true', undefined, { timeout: 30_000 });
  await page.getByLabel('Speed').selectOption('600');
  const frames = (mode: 'play' | 'step') =>
    page.evaluate(
      ({ mode, ms }) =>
        new Promise<FrameRate>((resolve) => {
          const slider = document.getElementById('replay-position') as HTMLInputElement;
          const play = document.getElementById('replay-play') as HTMLButtonElement;
          const startIndex = Number(slider.value);
          const t: number[] = [];
          const tick = (now: number) => {
            t.push(now);
            if (mode === 'step') {
              slider.value = String((Number(slider.value) + 1) % (Number(slider.max) + 1));
              slider.dispatchEvent(new Event('input', { bubbles: true }));
            }
            if (now - t[0]! < ms) requestAnimationFrame(tick);
            else {
              if (mode === 'play') play.click();
              const d = t.slice(1).map((x, i) => x - t[i]!).sort((a, b) => a - b);
              resolve({
                fps: ((t.length - 1) * 1000) / (t[t.length - 1]! - t[0]!),
                p95: d[Math.min(d.length - 1, Math.ceil(0.95 * d.length) - 1)] ?? NaN,
                long: d.filter((x) => x > 2000 / 60).length,
                frames: t.length - 1,
                stepped: Number(slider.value) - startIndex,
              });
            }
          };
          if (mode === 'play') play.click();
          requestAnimationFrame(tick);
        }),
      { mode, ms },
    );
  const playRate = await frames('play');
  const stepRate = await frames('step');
  await page.close();
  return { play: playRate, step: stepRate };
}

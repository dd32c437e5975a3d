import mqtt from 'mqtt';
import { chromium } from '@playwright/test';
import type { StackEnv } from '../../scripts/stack.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { createEnvironment } from '../common/service.js';
import type { Cleanup } from '../common/setup.js';
import { fixed, int, summarize, verdict } from '../common/runner.js';
import { bundle } from '../../scripts/bundle.js';

/**
 * The console benchmark's live-inbox phase (issue 11, "Performance"): publish → alert visible in
 * an open inbox. The service runs as api, ingest and worker child processes on a fresh database;
 * a manager signs in (development sign-in) in Debian's chromium and keeps /console/alerts open
 * (browser/pages/inbox-live.ts on its EventSource). Each of `alerts` people with an exclusion zone
 * then publishes one breaching track over MQTT, one after the other; the time from just before
 * the publish to the row appearing in the page's table (a MutationObserver, same machine clock)
 * is one sample. Returns table rows: measurement, value, unit, target, verdict.
 */
export interface LiveInboxOptions {
  stack: StackEnv;
  cleanups: Cleanup[];
  log: (m: string) => void;
  /** how many alerts (one per person and device) */
  alerts: number;
  /** how long one alert may take to show before the run fails (ms) */
  perAlertTimeoutMs?: number;
  chromiumPath?: string;
}

export const LIVE_INBOX_P99_MS = 2000;
const IN = { lat: 52.95, lon: -1.1497015 };
const OUT = { lat: 52.9589932, lon: -1.15 };

export async function liveInboxPhase(o: LiveInboxOptions): Promise<string[][]> {
  await bundle(); // the page scripts the api serves (browser/pages → console/public/js)
  const env = await createEnvironment(o.stack, o.cleanups, { DEV_SIGN_IN: 'true', HOST: '127.0.0.1' });
  await env.start(['api', 'ingest', 'worker']);
  const base = `http://127.0.0.1:${env.port}`;
  const admin = { authorization: `Bearer ${await mintDevToken(o.stack.JWT_SECRET, 'bench-admin', 'admin')}`, 'content-type': 'application/json' };
  const post = async (path: string, body: object) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  };
  const id = (i: number) => String(i).padStart(4, '0');
  o.log(`provisioning ${o.alerts} people, tags and exclusion zones`);
  for (let i = 0; i < o.alerts; i++) {
    await post('/v1/subjects', { id: `BL-S${id(i)}`, display_name: `Bench Person ${id(i)}`, cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-bench'] });
    await post('/v1/devices', { id: `BL-D${id(i)}`, kind: 'gps' });
    await post(`/v1/subjects/BL-S${id(i)}/assignments`, { device_id: `BL-D${id(i)}`, start: new Date(Date.now() - 86400_000).toISOString() });
    await post(`/v1/subjects/BL-S${id(i)}/zones`, { type: 'Feature', geometry: { type: 'Point', coordinates: [-1.15, 52.95] }, properties: { kind: 'exclusion', name: 'victim address', radius_m: 300, grace_s: 60 } });
  }

  const browser = await chromium.launch({ executablePath: o.chromiumPath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  o.cleanups.push({ what: 'chromium', run: () => browser.close() });
  const pub = await mqtt.connectAsync(env.broker.url, { clientId: `bench-live-inbox-${env.prefix}` });
  o.cleanups.push({ what: 'bench publisher', run: () => pub.endAsync() });

  const page = await browser.newPage();
  await page.goto(`${base}/console/sign-in/dev`);
  await page.getByLabel('Offender manager').check();
  await page.getByLabel('User ID').fill('om-bench');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/console/caseload`);
  await page.goto(`${base}/console/alerts`);
  await page.waitForFunction(() => document.querySelector('table[data-testid="inbox"]')?.getAttribute('data-live') === 'true');
  // when each row appeared (epoch ms), by the person's name in its label
  await page.evaluate(() => {
    const seen: Record<string, number> = {};
    (window as unknown as { seen: Record<string, number> }).seen = seen;
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n instanceof HTMLTableRowElement && n.dataset.label) seen[n.dataset.label] ??= Date.now();
    }).observe(document.querySelector('table[data-testid="inbox"] tbody')!, { childList: true });
  });

  o.log(`publishing ${o.alerts} breaching tracks, one at a time`);
  const samples: number[] = [];
  for (let i = 0; i < o.alerts; i++) {
    const t0 = Date.now() - 10 * 60_000;
    const walk = [OUT, IN, IN, IN, IN, OUT].map((p, k) => ({ ts: new Date(t0 + k * 30_000).toISOString(), ...p, accuracy_m: 10 }));
    const label = `Entered an exclusion zone, Bench Person ${id(i)}`;
    const sent = Date.now();
    await pub.publishAsync(`tags/v1/BL-D${id(i)}/gps`, JSON.stringify(walk), { qos: 1 });
    const handle = await page.waitForFunction((l) => (window as unknown as { seen: Record<string, number> }).seen[l], label, { timeout: o.perAlertTimeoutMs ?? 30_000, polling: 20 });
    samples.push(((await handle.jsonValue()) as number) - sent);
  }
  await page.close();
  const s = summarize(samples);
  const p90 = [...samples].sort((a, b) => a - b)[Math.ceil(0.9 * samples.length) - 1] ?? NaN;
  return [
    ['live inbox: publish → alert row visible (p50)', int(s.p50), 'ms', '', ''],
    ['live inbox: publish → alert row visible (p90)', int(p90), 'ms', '', ''],
    [`live inbox: publish → alert row visible (p99, ${s.n} alerts)`, int(s.p99), 'ms', `< ${int(LIVE_INBOX_P99_MS)}`, verdict(s.p99 < LIVE_INBOX_P99_MS)],
    ['live inbox: slowest', int(s.max), 'ms', '', ''],
    ['live inbox: mean', fixed(samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length), 0), 'ms', '', ''],
  ];
}

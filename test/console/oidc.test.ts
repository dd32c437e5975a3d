import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, startTestService, testConfig, type TestService } from '../support/env.js';
import { loginAtProvider, startTestProvider, type TestProvider } from '../support/oidc.js';
import { consoleSettings } from '../../console/settings.js';
import { insertSubject } from '../../registry/subjects.repo.js';
import { ConsoleClient } from './support.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let idp: TestProvider;
const CONSOLE_URL = 'http://127.0.0.1:9/console';
const CALLBACK = `${CONSOLE_URL}/sign-in/callback`;

beforeAll(async () => {
  db = await createTestDatabase();
  idp = await startTestProvider(CALLBACK, { 'om-1': { tw_role: 'offender_manager' }, 'om-2': { tw_role: 'offender_manager' }, stranger: { tw_role: 'visitor' } }, { roleClaim: 'tw_role' });
  svc = await startTestService(
    testConfig({ DATABASE_URL: db.url, OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: idp.clientId, OIDC_CLIENT_SECRET: idp.clientSecret, CONSOLE_URL, JWT_ROLE_CLAIM: 'tw_role' }),
  );
  // (the API's tokens here carry their role in tw_role too: the subjects go in directly)
  await insertSubject(db.pool, { id: 'O-S1', display_name: 'Dana Example', cohort: 'fixed', rag: 'amber', timezone: 'Europe/London', offender_manager_ids: ['om-1'] });
  await insertSubject(db.pool, { id: 'O-S2', display_name: 'Eve Other', cohort: 'fixed', rag: 'amber', timezone: 'Europe/London', offender_manager_ids: ['om-2'] });
});

afterAll(async () => {
  await svc?.stop();
  await idp?.stop();
  await db?.drop();
});

/** Sign-in through the provider: the console's start, the provider's login and consent, the callback. */
async function signIn(c: ConsoleClient, login: string) {
  const start = await c.get('/console/sign-in/oidc');
  expect(start.statusCode).toBe(303);
  const auth = new URL(start.headers.location as string);
  expect(auth.origin).toBe(idp.issuer);
  expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
  expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(auth.searchParams.get('state')).toBeTruthy();
  expect(auth.searchParams.get('nonce')).toBeTruthy();
  const back = await loginAtProvider(auth.href, login, CALLBACK);
  return { back, res: await c.get(`/console/sign-in/callback${back.search}`) };
}

describe('OpenID Connect sign-in against a real provider (authorization code with PKCE)', () => {
  it('signs a manager in with the user and role claims, and shows only their caseload', async () => {
    const c = new ConsoleClient(svc.app);
    const { res } = await signIn(c, 'om-1');
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/console');
    const page = await c.get('/console/caseload');
    expect(page.statusCode).toBe(200);
    expect(page.body, /<main[\s\S]*<\/main>/.exec(page.body)?.[0]).toContain('Dana Example');
    expect(page.body).not.toContain('Eve Other');
    expect(page.body).toContain('Signed in as om-1');
  });

  it('accepts a callback once: replaying it (or one without the sign-in cookie) does not sign in', async () => {
    const c = new ConsoleClient(svc.app);
    const { back } = await signIn(c, 'om-1');
    const replay = await c.get(`/console/sign-in/callback${back.search}`);
    expect(replay.statusCode).toBe(400);
    const other = new ConsoleClient(svc.app);
    const stolen = await other.get(`/console/sign-in/callback${back.search}`);
    expect(stolen.statusCode).toBe(400);
    expect(other.cookies.has('tagwatch_console')).toBe(false);
  });

  it('refuses a callback whose state does not match the sign-in it claims to finish', async () => {
    const c = new ConsoleClient(svc.app);
    const start = await c.get('/console/sign-in/oidc');
    const auth = new URL(start.headers.location as string);
    const back = await loginAtProvider(auth.href, 'om-1', CALLBACK);
    back.searchParams.set('state', 'forged-state');
    const res = await c.get(`/console/sign-in/callback${back.search}`);
    expect(res.statusCode).toBe(401);
    expect(c.cookies.has('tagwatch_console')).toBe(false);
  });

  it('refuses an account whose role claim is not a tagwatch role', async () => {
    const c = new ConsoleClient(svc.app);
    const { res } = await signIn(c, 'stranger');
    expect(res.statusCode).toBe(401);
    expect(res.body).toContain('Sign-in failed');
    expect(c.cookies.has('tagwatch_console')).toBe(false);
  });

  it('offers no development sign-in when OIDC_ISSUER is set, and needs a client id and the console URL', async () => {
    expect((await svc.app.inject({ method: 'GET', url: '/console/sign-in/dev' })).statusCode).toBe(404);
    expect((await svc.app.inject({ method: 'GET', url: '/console/sign-in' })).body).toContain('/console/sign-in/oidc');
    expect(() => consoleSettings(testConfig({ OIDC_ISSUER: idp.issuer, CONSOLE_URL }))).toThrow(/OIDC_CLIENT_ID/);
    expect(() => consoleSettings(testConfig({ OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: 'x' }))).toThrow(/CONSOLE_URL/);
    expect(() => consoleSettings(testConfig({ OIDC_ISSUER: 'http://idp.example.test', OIDC_CLIENT_ID: 'x', CONSOLE_URL }))).toThrow(/https/);
  });
});

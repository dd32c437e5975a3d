import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ROLES, type Role } from '../platform/http/auth.js';
import { createSession, csrfMatches, deleteSession, startSignIn, takeSignIn, ABSOLUTE_MS, SIGN_IN_MS } from './sessions.repo.js';
import { oidcSignIn } from './oidc.js';
import { cookieName, type ConsoleDeps } from './console.plugin.js';

/** Before a session exists, the sign-in form is protected by a double-submit token (cookie = form field). */
const PRE_COOKIE = 'tagwatch_console_signin';
/** An OpenID Connect sign-in under way (its state, nonce and verifier are kept server-side). */
const OIDC_COOKIE = 'tagwatch_console_oidc';
const USER_ID = /^[A-Za-z0-9_.@:-]{1,128}$/;

const ROLE_NAMES: Record<Role, string> = {
  offender_manager: 'Offender manager',
  supervisor: 'Supervisor',
  analyst: 'Analyst',
  admin: 'Administrator',
  crime_analyst: 'Crime analyst',
};

/** Sign-in, the development sign-in (only when allowed: settings.ts) and sign-out. */
export function signInRoutes(deps: ConsoleDeps) {
  const { pool, settings } = deps;
  const cookieOptions = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure: settings.secureCookie };
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/sign-in', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
      const signedOut = (request.query as { signed_out?: string }).signed_out === '1';
      return reply.view('sign-in.njk', { devSignIn: settings.devSignIn, oidc: !!settings.oidc, signedOut });
    });

    if (settings.oidc) {
      const oidc = oidcSignIn(settings.oidc);
      const redirect = new URL(settings.oidc.redirectUri);
      app.get('/sign-in/oidc', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
        let started: Awaited<ReturnType<typeof oidc.begin>>;
        try {
          started = await oidc.begin();
        } catch (err) {
          request.log.error({ reason: (err as Error).message }, 'console sign-in: the identity provider cannot be reached');
          return reply.code(503).view('error.njk', { title: 'Sign-in is not available', message: 'The sign-in service cannot be reached. Try again in a few minutes.' });
        }
        const token = await startSignIn(pool, started, new Date());
        reply.setCookie(OIDC_COOKIE, token, { ...cookieOptions, maxAge: SIGN_IN_MS / 1000 });
        return reply.code(303).header('location', started.url).send();
      });
      app.get('/sign-in/callback', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
        const token = request.cookies[OIDC_COOKIE];
        reply.clearCookie(OIDC_COOKIE, cookieOptions);
        const pending = token ? await takeSignIn(pool, token, new Date()) : null;
        if (!pending) return reply.code(400).view('error.njk', { title: 'Sign-in expired', message: 'Your sign-in took too long or was already used. Start again from the sign-in page.' });
        // the URL the provider sent the browser to, on the configured base (never the Host header)
        const callback = new URL(redirect.href);
        callback.search = new URL(request.url, 'http://x').search;
        let user;
        try {
          user = await oidc.finish(callback, pending);
        } catch (err) {
          request.log.warn({ reason: (err as Error).message }, 'console sign-in refused');
          return reply.code(401).view('error.njk', { title: 'Sign-in failed', message: 'Your sign-in was not accepted. Start again from the sign-in page; if it fails again, ask your administrator to check your account has a console role.' });
        }
        const session = await createSession(pool, user, new Date());
        request.log.info({ user: user.id, role: user.role, via: 'oidc' }, 'console sign-in');
        reply.setCookie(cookieName(settings), session.token, { ...cookieOptions, maxAge: ABSOLUTE_MS / 1000 });
        return reply.code(303).header('location', '/console').send();
      });
    }

    if (!settings.devSignIn) return;

    const devForm = (reply: FastifyReply, values: { role?: string; user_id?: string }, errors: Array<{ text: string; href: string }>) => {
      const token = randomBytes(24).toString('base64url');
      reply.setCookie(PRE_COOKIE, token, { ...cookieOptions, maxAge: 3600 });
      return reply.code(errors.length ? 400 : 200).view('dev-sign-in.njk', {
        csrf: token,
        values,
        errors,
        roles: ROLES.map((r) => ({ value: r, text: ROLE_NAMES[r], checked: values.role === r })),
      });
    };

    app.get('/sign-in/dev', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => devForm(reply, {}, []));

    app.post('/sign-in/dev', { config: { public: true }, schema: { hide: true } }, async (request: FastifyRequest, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const expected = request.cookies[PRE_COOKIE];
      if (!expected || !csrfMatches(expected, body._csrf)) {
        return reply.code(403).view('error.njk', { title: 'Sign-in form expired', message: 'Your sign-in form was not accepted. Open the sign-in page again and try once more.' });
      }
      const role = typeof body.role === 'string' ? body.role : '';
      const userId = typeof body.user_id === 'string' ? body.user_id.trim() : '';
      const errors: Array<{ text: string; href: string }> = [];
      if (!(ROLES as readonly string[]).includes(role)) errors.push({ text: 'Select a role', href: '#role' });
      if (!USER_ID.test(userId)) errors.push({ text: 'Enter a user ID of 1 to 128 letters, digits, dots, dashes, underscores, @ or colons', href: '#user_id' });
      if (errors.length) return devForm(reply, { role, user_id: userId }, errors);
      const session = await createSession(pool, { id: userId, role: role as Role }, new Date());
      request.log.info({ user: userId, role, via: 'dev-sign-in' }, 'console sign-in');
      reply.clearCookie(PRE_COOKIE, cookieOptions);
      reply.setCookie(cookieName(settings), session.token, { ...cookieOptions, maxAge: ABSOLUTE_MS / 1000 });
      return reply.code(303).header('location', '/console').send();
    });
  };
}

/** Sign-out (a session route: registered with the pages, CSRF-checked like every change). */
export async function signOut(deps: ConsoleDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const name = cookieName(deps.settings);
  const token = request.cookies[name];
  if (token) await deleteSession(deps.pool, token);
  reply.clearCookie(name, { path: '/', httpOnly: true, sameSite: 'lax', secure: deps.settings.secureCookie });
  return reply.code(303).header('location', '/console/sign-in?signed_out=1').send();
}

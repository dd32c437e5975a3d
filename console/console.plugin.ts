import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import formbody from '@fastify/formbody';
import nunjucks from 'nunjucks';
import type { Pool } from '../platform/db.js';
import type { SessionAuth } from '../platform/http/auth.js';
import type { AlertRoutesDeps } from '../alerts/alerts.routes.js';
import type { AlertStreams } from '../alerts/stream.js';
import { csrfMatches, touchSession, type ConsoleSession } from './sessions.repo.js';
import type { ConsoleSettings } from './settings.js';
import { signInRoutes } from './sign-in.routes.js';
import { pageRoutes } from './pages.routes.js';
import { supervisorRoutes } from './supervisor.routes.js';
import { analystRoutes } from './analyst.routes.js';
import { liveRoutes } from './live.routes.js';
import { adminRoutes, type AdminConsoleDeps } from './admin.plugin.js';
import { zoneRoutes } from './zones.routes.js';
import { evidenceRoutes } from './evidence.routes.js';
import { crimePageRoutes } from './crime.routes.js';
import type { CrimeRoutesDeps } from '../crime/crime.routes.js';
import type { Metrics } from '../platform/metrics.js';
import { subjectRoutes } from './subject.routes.js';
import { displayTime } from './present.js';

/**
 * The console (contract 1.1 §9): server-rendered GOV.UK Frontend / MoJ Frontend pages under
 * /console, authenticated by a server-side session cookie (never a bearer token), with a strict
 * content security policy of its own: nothing is requested from outside the service.
 */
export const COOKIE = 'tagwatch_console';
export const SECURE_COOKIE = '__Host-tagwatch_console';

declare module 'fastify' {
  interface FastifyRequest {
    /** the console session of the request (set by the session check of a console route) */
    consoleSession: ConsoleSession | null;
    /** per-response nonce of the page's inline script */
    cspNonce: string;
  }
}

export interface ConsoleDeps {
  pool: Pool;
  settings: ConsoleSettings;
  alerts: AlertRoutesDeps;
  /** the live alert streams, shared with GET /v1/alerts/stream (same limits) */
  streams: AlertStreams;
  /** the admin pages' and subscriptions' services (console/admin*.routes.ts) */
  admin?: AdminConsoleDeps;
  /** crime matching (the console's crime pages go through the API's functions); absent: no upload queue, no metrics */
  crime?: CrimeRoutesDeps & { metrics: Metrics };
}

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const GOVUK = join(dirname(require.resolve('govuk-frontend/package.json')), 'dist');
const MOJ = dirname(require.resolve('@ministryofjustice/frontend/package.json'));

export function cookieName(settings: ConsoleSettings): string {
  return settings.secureCookie ? SECURE_COOKIE : COOKIE;
}

/** Registered by buildApp with `{ prefix: '/console' }`: every route below is /console/…. */
/** The session check registerAuth runs for every console route (`config.session`). */
export function consoleSessionAuth(pool: Pool, settings: ConsoleSettings): SessionAuth {
  return {
    authenticate: async (request) => {
      const token = request.cookies?.[cookieName(settings)];
      const session = token ? await touchSession(pool, token, new Date()) : null;
      request.consoleSession = session;
      return session?.user ?? null;
    },
    refuse: (request, reply, status) => {
      if (status === 401) {
        // a page: to the sign-in page; anything else: a plain refusal
        if (request.method === 'GET') return reply.code(303).header('location', '/console/sign-in').send();
        return reply.code(401).type('text/plain').send('sign in first');
      }
      return reply.code(403).view('error.njk', { title: 'You cannot see this page', message: `Your role (${request.user?.role}) does not give access to this page.`, user: request.user });
    },
  };
}

/** GOV.UK and MoJ style sheets refer to /assets/…: rewritten once to where the console serves them. */
function rewrittenCss(file: string, prefix: string): string {
  return readFileSync(file, 'utf8').replaceAll('url(/assets/', `url(${prefix}`).replace(/\/\*# sourceMappingURL=.*?\*\//g, '');
}

export function consolePlugin(deps: ConsoleDeps) {
  return async (app: FastifyInstance): Promise<void> => {
    // MAP_TILE_URL's origin is the one place outside the service a page may load from (map tiles)
    const tileOrigin = deps.settings.mapTiles ? ` ${new URL(deps.settings.mapTiles.url.replace(/[{}]/g, '')).origin}` : '';
    app.decorateRequest('consoleSession', null);
    app.decorateRequest('cspNonce', '');
    await app.register(formbody, { bodyLimit: 64 * 1024 });
    await app.register(fastifyStatic, { root: join(here, 'public'), serve: false });
    await app.register(fastifyView, { engine: { nunjucks }, templates: [join(here, 'views'), GOVUK, MOJ], options: { autoescape: true, onConfigure: (env: nunjucks.Environment) => env.addFilter('when', displayTime) }, defaultContext: { assetPath: '/console/assets/govuk', mapTiles: deps.settings.mapTiles ?? null, reviewRole: deps.alerts.reviewRole ?? 'supervisor' } });

    app.addHook('onRequest', async (request, reply) => {
      request.cspNonce = randomBytes(16).toString('base64');
      // GOV.UK's page template puts it on its one inline script
      // (@fastify/view merges reply.locals into every page's context; its types do not declare it)
      const withLocals = reply as unknown as { locals: Record<string, unknown> | null };
      withLocals.locals = { ...(withLocals.locals ?? {}), cspNonce: request.cspNonce };
      reply.header(
        'content-security-policy',
        `default-src 'self'; script-src 'self' 'nonce-${request.cspNonce}'; style-src 'self'; img-src 'self'${tileOrigin}; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`,
      );
      reply.header('cache-control', request.url.startsWith('/console/assets/') ? 'public, max-age=3600' : 'no-store');
      reply.header('referrer-policy', 'no-referrer');
    });

    const css = {
      'govuk-frontend.min.css': rewrittenCss(join(GOVUK, 'govuk', 'govuk-frontend.min.css'), '/console/assets/govuk/'),
      'moj-frontend.min.css': rewrittenCss(join(MOJ, 'moj', 'moj-frontend.min.css'), '/console/assets/moj/'),
    } as Record<string, string>;
    const files: Record<string, [string, string]> = {
      'govuk-frontend.min.js': ['govuk-frontend.min.js', join(GOVUK, 'govuk')],
      'console.js': ['console.js', join(here, 'public')],
      'console.css': ['console.css', join(here, 'public')],
    };
    app.get<{ Params: { '*': string } }>('/assets/*', { config: { public: true }, schema: { hide: true } }, async (request, reply: FastifyReply) => {
      const path = request.params['*'];
      if (css[path]) return reply.type('text/css; charset=utf-8').send(css[path]);
      const file = files[path];
      if (file) return reply.sendFile(file[0], file[1]);
      // the bundled page scripts and their style sheets (scripts/bundle.ts)
      if (/^js\/[\w.-]+\.(js|css)$/.test(path)) return reply.sendFile(path.slice('js/'.length), join(here, 'public', 'js'));
      if (path.startsWith('govuk/')) return reply.sendFile(path.slice('govuk/'.length), join(GOVUK, 'govuk', 'assets'));
      if (path.startsWith('moj/')) return reply.sendFile(path.slice('moj/'.length), join(MOJ, 'moj', 'assets'));
      return reply.code(404).type('text/plain').send('not found');
    });

    // every change a console session makes carries the session's CSRF token (forms: `_csrf`),
    // compared in constant time before any route handler runs (403 page otherwise); one hook for
    // every console route plugin registered below. Sign-in forms (no session yet) use their own
    // double-submit token (sign-in.routes.ts).
    app.addHook('preHandler', async (request, reply) => {
      if (request.method === 'GET' || request.method === 'HEAD' || !request.routeOptions.config?.session) return;
      const given = (request.body as Record<string, unknown> | undefined)?._csrf;
      if (!request.consoleSession || !csrfMatches(request.consoleSession.csrf, given)) {
        return reply.code(403).view('error.njk', {
          title: 'This form has expired',
          message: 'The form was not accepted (its security token was missing or wrong). Go back, reload the page and try again.',
          user: request.user,
          csrf: request.consoleSession?.csrf ?? '',
        });
      }
    });
    await app.register(signInRoutes(deps));
    await app.register(pageRoutes(deps));
    await app.register(supervisorRoutes(deps));
    await app.register(analystRoutes(deps));
    await app.register(liveRoutes(deps));
    await app.register(adminRoutes(deps));
    await app.register(zoneRoutes(deps));
    await app.register(evidenceRoutes(deps));
    await app.register(crimePageRoutes(deps));
    await app.register(subjectRoutes(deps));
    app.setNotFoundHandler((request: FastifyRequest, reply) => reply.code(404).view('error.njk', { title: 'Page not found', message: 'If you typed the web address, check it is correct.', user: request.user }));
  };
}

import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem } from './problem.js';
import { jwksUrlProblem, type Config } from '../config.js';

export const ROLES = ['admin', 'supervisor', 'offender_manager', 'analyst', 'crime_analyst'] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  /** user id (the token's user claim, `sub` by default) */
  id: string;
  role: Role;
  /** when the token expires (epoch ms, its `exp`), if it says */
  expiresAt?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: User | null;
  }
  interface FastifyContextConfig {
    /** roles allowed on the route; every route declares this unless `public` */
    roles?: readonly Role[];
    /** no authentication: health, readiness, the OpenAPI document and the console's sign-in pages */
    public?: boolean;
    /** authenticated by the console's session cookie instead of a bearer token (`/console/…` only) */
    session?: boolean;
  }
}

export interface AuthOptions {
  jwtSecret?: string;
  jwksUrl?: string;
  /** a token's `aud` must contain this (JWT_AUDIENCE) */
  audience: string;
  /** a token's `iss` must equal this when set (JWT_ISSUER; required with a JWKS) */
  issuer?: string;
  /** claim names of the user id and the role (JWT_USER_CLAIM, JWT_ROLE_CLAIM) */
  userClaim?: string;
  roleClaim?: string;
}

/** Seconds of clock difference tolerated between the identity provider and us (exp, nbf, iat). */
export const CLOCK_TOLERANCE_S = 30;

/** The verifier's options from the configuration. */
export function authOptions(config: Config): AuthOptions {
  return {
    jwtSecret: config.JWT_SECRET,
    jwksUrl: config.JWT_JWKS_URL,
    audience: config.JWT_AUDIENCE,
    issuer: config.JWT_ISSUER,
    userClaim: config.JWT_USER_CLAIM,
    roleClaim: config.JWT_ROLE_CLAIM,
  };
}

/**
 * Verifies a bearer token (contract 1.1 §6): HS256 with the development secret, or RS/ES/PS/EdDSA
 * keys from the JWKS URL; `exp` required, `aud` containing the audience, `iss` equal to the
 * issuer when set, 30 s clock tolerance. Throws (with jose's reason) on any failure.
 */
export function createTokenVerifier(opts: AuthOptions): (token: string) => Promise<User> {
  if (opts.jwksUrl) {
    const why = jwksUrlProblem(opts.jwksUrl);
    if (why) throw new Error(`JWT_JWKS_URL: ${why}`);
    if (!opts.issuer) throw new Error('JWT_ISSUER is required with JWT_JWKS_URL');
  } else if (!opts.jwtSecret) throw new Error('JWT_SECRET or JWT_JWKS_URL is required');
  const jwks: JWTVerifyGetKey | null = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : null;
  const secret = opts.jwtSecret ? new TextEncoder().encode(opts.jwtSecret) : null;
  const userClaim = opts.userClaim ?? 'sub';
  const roleClaim = opts.roleClaim ?? 'role';
  const checks = {
    audience: opts.audience,
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    requiredClaims: ['exp'],
    clockTolerance: CLOCK_TOLERANCE_S,
  };
  return async (token) => {
    const { payload } = jwks
      ? await jwtVerify(token, jwks, { ...checks, algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'] })
      : await jwtVerify(token, secret!, { ...checks, algorithms: ['HS256'] });
    const id = payload[userClaim];
    const role = payload[roleClaim];
    if (typeof id !== 'string' || id === '' || id.length > 128) throw new Error(`token has no valid ${userClaim} claim`);
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new Error(`token has no valid ${roleClaim} claim`);
    return { id, role: role as Role, ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
  };
}

/** The one answer to a token that fails verification: the reason goes to the debug log only. */
export const INVALID_TOKEN = 'the bearer token is invalid or expired';

/**
 * The one access-control mechanism: every route declares `config.roles` (or `config.public`);
 * a route declaring neither fails at start-up. Caseload limits are applied in SQL by the
 * repositories from `request.user`.
 */
export interface RouteEntry {
  method: string;
  url: string;
  roles: readonly Role[];
  public: boolean;
  /** the route declares when a reason is required (config.reasonRequired) */
  reason: boolean;
  /** authenticated by the console session cookie (never a bearer token) */
  session: boolean;
}

/**
 * The console's session check, given to registerAuth: the user of the request's session cookie
 * (or null), and how to answer a request without one (401) or of a role the route does not allow
 * (403): the console answers with pages, not problem details.
 */
export interface SessionAuth {
  authenticate: (request: FastifyRequest) => Promise<User | null>;
  refuse: (request: FastifyRequest, reply: FastifyReply, status: 401 | 403) => FastifyReply;
}

const tables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route with its roles, as declared: the security tests generate their matrix from it. */
export function routeTable(app: FastifyInstance): RouteEntry[] {
  return tables.get(app) ?? [];
}

export function registerAuth(app: FastifyInstance, verify: (token: string) => Promise<User>, session: SessionAuth | null = null): void {
  const table: RouteEntry[] = [];
  tables.set(app, table);
  app.decorateRequest('user', null);
  app.addHook('onRoute', (route) => {
    const cfg = route.config as { roles?: readonly Role[]; public?: boolean; session?: boolean; reasonRequired?: unknown } | undefined;
    if (route.url.startsWith('/docs')) return; // swagger-ui's own routes: public documentation
    if (!cfg?.public && !cfg?.roles?.length) throw new Error(`route ${route.method} ${route.url} declares no roles`);
    // the session cookie is the console's: an API route never accepts it, a console route never a bearer token
    if (cfg?.session && !route.url.startsWith('/console')) throw new Error(`route ${route.method} ${route.url}: only /console routes use the session cookie`);
    if (route.url.startsWith('/console') && !cfg?.public && !cfg?.session) throw new Error(`route ${route.method} ${route.url}: a console route is authenticated by the session cookie (config.session)`);
    for (const method of ([] as string[]).concat(route.method)) {
      if (method !== 'HEAD') table.push({ method, url: route.url, roles: cfg?.roles ?? [], public: !!cfg?.public, reason: typeof cfg?.reasonRequired === 'function', session: !!cfg?.session });
    }
  });
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const cfg = request.routeOptions.config as { roles?: readonly Role[]; public?: boolean; session?: boolean } | undefined;
    if (cfg?.public || request.url.startsWith('/docs') || !request.routeOptions.url) return;
    if (cfg?.session) {
      // no session check configured: nobody gets in (fail closed)
      const user = session ? await session.authenticate(request) : null;
      if (!user) return session ? session.refuse(request, reply, 401) : problem(reply, 401, 'Unauthorized', 'a console session is required');
      request.user = user;
      if (!cfg.roles?.includes(user.role)) return session!.refuse(request, reply, 403);
      return;
    }
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) return problem(reply, 401, 'Unauthorized', 'a Bearer token is required');
    try {
      request.user = await verify(match[1]!);
    } catch (err) {
      // jose's message names the failed check (never the token); the client learns nothing
      request.log.debug({ reason: (err as Error).message, code: (err as { code?: string }).code }, 'bearer token refused');
      return problem(reply, 401, 'Unauthorized', INVALID_TOKEN);
    }
    if (!cfg?.roles?.includes(request.user.role)) {
      return problem(reply, 403, 'Forbidden', `role ${request.user.role} may not ${request.method} ${request.routeOptions.url}`);
    }
  });
}

/** The authenticated user of a route that declared roles (set by the onRequest hook). */
export function userOf(request: FastifyRequest): User {
  if (!request.user) throw new Error('no authenticated user on a role-checked route');
  return request.user;
}

import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problem } from './problem.js';

export const ROLES = ['admin', 'supervisor', 'offender_manager', 'analyst'] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  /** user id (the token's `sub`) */
  id: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: User | null;
  }
  interface FastifyContextConfig {
    /** roles allowed on the route; every route declares this unless `public` */
    roles?: readonly Role[];
    /** no authentication: health, readiness and the OpenAPI document only */
    public?: boolean;
  }
}

export interface AuthOptions {
  jwtSecret?: string;
  jwksUrl?: string;
}

/** Verifies a bearer token: HS256 with the development secret, or RS/ES keys from the JWKS URL. */
export function createTokenVerifier(opts: AuthOptions): (token: string) => Promise<User> {
  const jwks: JWTVerifyGetKey | null = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : null;
  const secret = opts.jwtSecret ? new TextEncoder().encode(opts.jwtSecret) : null;
  return async (token) => {
    const { payload } = jwks
      ? await jwtVerify(token, jwks, { algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'] })
      : await jwtVerify(token, secret!, { algorithms: ['HS256'] });
    const role = payload.role;
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('token has no sub');
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new Error('token has no valid role');
    return { id: payload.sub, role: role as Role };
  };
}

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
}

const tables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route with its roles, as declared: the security tests generate their matrix from it. */
export function routeTable(app: FastifyInstance): RouteEntry[] {
  return tables.get(app) ?? [];
}

export function registerAuth(app: FastifyInstance, verify: (token: string) => Promise<User>): void {
  const table: RouteEntry[] = [];
  tables.set(app, table);
  app.decorateRequest('user', null);
  app.addHook('onRoute', (route) => {
    const cfg = route.config as { roles?: readonly Role[]; public?: boolean } | undefined;
    if (route.url.startsWith('/docs')) return; // swagger-ui's own routes: public documentation
    if (!cfg?.public && !cfg?.roles?.length) throw new Error(`route ${route.method} ${route.url} declares no roles`);
    for (const method of ([] as string[]).concat(route.method)) {
      if (method !== 'HEAD') table.push({ method, url: route.url, roles: cfg?.roles ?? [], public: !!cfg?.public });
    }
  });
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const cfg = request.routeOptions.config as { roles?: readonly Role[]; public?: boolean } | undefined;
    if (cfg?.public || request.url.startsWith('/docs') || !request.routeOptions.url) return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) return problem(reply, 401, 'Unauthorized', 'a Bearer token is required');
    try {
      request.user = await verify(match[1]!);
    } catch (err) {
      return problem(reply, 401, 'Unauthorized', `invalid token: ${(err as Error).message}`);
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

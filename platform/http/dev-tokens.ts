import { SignJWT } from 'jose';
import type { Role } from './auth.js';

export interface DevTokenOptions {
  /** lifetime in seconds (default 12 hours) */
  ttlSeconds?: number;
  /** `aud` (default `tagwatch`, the default JWT_AUDIENCE) */
  audience?: string;
  /** `iss`, when the service has a JWT_ISSUER */
  issuer?: string;
  /** claim names (JWT_USER_CLAIM, JWT_ROLE_CLAIM; default `sub`, `role`) */
  userClaim?: string;
  roleClaim?: string;
}

/** Dev-token options from an environment (the JWT_* settings a local service runs with). */
export function devTokenOptions(env: NodeJS.ProcessEnv): DevTokenOptions {
  return {
    ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE } : {}),
    ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
    ...(env.JWT_USER_CLAIM ? { userClaim: env.JWT_USER_CLAIM } : {}),
    ...(env.JWT_ROLE_CLAIM ? { roleClaim: env.JWT_ROLE_CLAIM } : {}),
  };
}

/**
 * Mints an HS256 token with the development secret (never used with JWT_JWKS_URL), carrying
 * what the verifier requires: `exp`, `aud`, and `iss` when given.
 */
export async function mintDevToken(secret: string, sub: string, role: Role, opts: DevTokenOptions = {}): Promise<string> {
  const userClaim = opts.userClaim ?? 'sub';
  const jwt = new SignJWT({ [opts.roleClaim ?? 'role']: role, ...(userClaim === 'sub' ? {} : { [userClaim]: sub }) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setAudience(opts.audience ?? 'tagwatch')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.ttlSeconds ?? 12 * 3600));
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  return jwt.sign(new TextEncoder().encode(secret));
}

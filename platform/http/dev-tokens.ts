import { SignJWT } from 'jose';
import type { Role } from './auth.js';

/** Mints an HS256 token with the development secret (never used with JWT_JWKS_URL). */
export async function mintDevToken(secret: string, sub: string, role: Role, ttlSeconds = 12 * 3600): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}

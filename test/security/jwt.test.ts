import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { createTokenVerifier, ROLES } from '../../platform/http/auth.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';

/** Contract 1.1 §6: exp required, aud contains JWT_AUDIENCE, iss equals JWT_ISSUER, 30 s skew. */
const SECRET = 's'.repeat(40);
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

function hs(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key);
}
const good: JWTPayload = { sub: 'u-1', role: 'admin', aud: 'tagwatch', exp: now() + 300 };

describe('JWT claims with the development secret', () => {
  const verify = createTokenVerifier({ jwtSecret: SECRET, audience: 'tagwatch' });

  it('accepts a token with exp and the audience, alone or in a list', async () => {
    expect(await verify(await hs(good))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
    expect(await verify(await hs({ ...good, aud: ['other-api', 'tagwatch'] }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
  });

  it('refuses a token without exp', async () => {
    const { exp: _exp, ...noExp } = good;
    await expect(verify(await hs(noExp))).rejects.toThrow(/exp/);
  });

  it('refuses a token for another audience, or for none', async () => {
    await expect(verify(await hs({ ...good, aud: 'other-api' }))).rejects.toThrow(/aud/);
    const { aud: _aud, ...noAud } = good;
    await expect(verify(await hs(noAud))).rejects.toThrow(/aud/);
  });

  it('uses JWT_AUDIENCE when configured', async () => {
    const v = createTokenVerifier({ jwtSecret: SECRET, audience: 'tagwatch-test' });
    await expect(v(await hs(good))).rejects.toThrow(/aud/);
    expect(await v(await hs({ ...good, aud: 'tagwatch-test' }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
  });

  it('refuses any iss other than JWT_ISSUER when it is set, and a token without one', async () => {
    const v = createTokenVerifier({ jwtSecret: SECRET, audience: 'tagwatch', issuer: 'https://idp.example/' });
    expect(await v(await hs({ ...good, iss: 'https://idp.example/' }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
    await expect(v(await hs({ ...good, iss: 'https://evil.example/' }))).rejects.toThrow(/iss/);
    await expect(v(await hs(good))).rejects.toThrow(/iss/);
  });

  it('tolerates 30 s of clock skew and no more', async () => {
    expect(await verify(await hs({ ...good, exp: now() - 20 }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
    await expect(verify(await hs({ ...good, exp: now() - 45 }))).rejects.toThrow(/exp/);
    expect(await verify(await hs({ ...good, nbf: now() + 20 }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
    await expect(verify(await hs({ ...good, nbf: now() + 45 }))).rejects.toThrow(/nbf/);
  });

  it('reads the user and the role from the configured claim names (JWT_USER_CLAIM, JWT_ROLE_CLAIM)', async () => {
    const v = createTokenVerifier({ jwtSecret: SECRET, audience: 'tagwatch', userClaim: 'preferred_username', roleClaim: 'tagwatch_role' });
    expect(await v(await hs({ ...good, sub: 'opaque-123', preferred_username: 'jo.smith', tagwatch_role: 'supervisor' }))).toEqual({ id: 'jo.smith', role: 'supervisor', expiresAt: expect.any(Number) });
    await expect(v(await hs(good))).rejects.toThrow(/preferred_username/);
  });

  it('knows the crime_analyst role', async () => {
    expect(ROLES).toContain('crime_analyst');
    expect(await verify(await hs({ ...good, role: 'crime_analyst' }))).toEqual({ id: 'u-1', role: 'crime_analyst', expiresAt: expect.any(Number) });
  });

  it('mints development tokens that carry exp and the audience (and the issuer when given)', async () => {
    expect(await verify(await mintDevToken(SECRET, 'dev-1', 'analyst'))).toEqual({ id: 'dev-1', role: 'analyst', expiresAt: expect.any(Number) });
    const v = createTokenVerifier({ jwtSecret: SECRET, audience: 'aud-x', issuer: 'iss-x' });
    expect(await v(await mintDevToken(SECRET, 'dev-2', 'admin', { audience: 'aud-x', issuer: 'iss-x' }))).toEqual({ id: 'dev-2', role: 'admin', expiresAt: expect.any(Number) });
  });
});

describe('JWT claims with a JWKS (served over loopback http)', () => {
  let server: Server;
  let url: string;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey as CryptoKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const es = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
  const iss = 'https://idp.example/realms/probation';

  it('accepts exp, aud and the configured iss; refuses each missing or foreign', async () => {
    const verify = createTokenVerifier({ jwksUrl: url, audience: 'tagwatch', issuer: iss });
    expect(await verify(await es({ ...good, iss }))).toEqual({ id: 'u-1', role: 'admin', expiresAt: expect.any(Number) });
    await expect(verify(await es({ ...good, iss: 'https://other.example/' }))).rejects.toThrow(/iss/);
    await expect(verify(await es({ ...good, iss, aud: 'account' }))).rejects.toThrow(/aud/);
    const { exp: _exp, ...noExp } = good;
    await expect(verify(await es({ ...noExp, iss }))).rejects.toThrow(/exp/);
    await expect(verify(await hs({ ...good, iss }))).rejects.toThrow();
  });

  it('refuses to be built with a JWKS but no issuer, or a JWKS over http to a non-loopback host', () => {
    expect(() => createTokenVerifier({ jwksUrl: url, audience: 'tagwatch' })).toThrow(/JWT_ISSUER/);
    expect(() => createTokenVerifier({ jwksUrl: 'http://idp.example/jwks', audience: 'tagwatch', issuer: iss })).toThrow(/https/);
  });
});

import * as client from 'openid-client';
import { ROLES, type Role, type User } from '../platform/http/auth.js';
import type { OidcSettings } from './settings.js';
import { issuerProblem } from './settings.js';

/**
 * OpenID Connect sign-in (contract 1.1 §9): authorization code with PKCE (S256), state and nonce,
 * through openid-client. The provider's metadata is discovered on first use (and again after a
 * failure), so the service starts while the identity provider is down.
 */
export interface OidcSignIn {
  /** where to send the browser, and what the callback must check */
  begin: () => Promise<{ url: string; state: string; nonce: string; verifier: string }>;
  /** the user of a callback URL (the code exchanged, the ID token checked), or throws why not */
  finish: (callbackUrl: URL, checks: { state: string; nonce: string; verifier: string }) => Promise<User>;
}

export function oidcSignIn(s: OidcSettings): OidcSignIn {
  let config: Promise<client.Configuration> | null = null;
  const discovered = (): Promise<client.Configuration> => {
    if (!config) {
      const insecure = new URL(s.issuer).protocol === 'http:' && issuerProblem(s.issuer) === null;
      config = client
        .discovery(new URL(s.issuer), s.clientId, undefined, s.clientSecret ? client.ClientSecretBasic(s.clientSecret) : client.None(), insecure ? { execute: [client.allowInsecureRequests] } : undefined)
        .catch((err: unknown) => {
          config = null; // try again on the next sign-in
          throw err;
        });
    }
    return config;
  };
  return {
    begin: async () => {
      const c = await discovered();
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(c, {
        redirect_uri: s.redirectUri,
        scope: 'openid',
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, state, nonce, verifier };
    },
    finish: async (callbackUrl, checks) => {
      const c = await discovered();
      const tokens = await client.authorizationCodeGrant(c, callbackUrl, { pkceCodeVerifier: checks.verifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true });
      const claims: Record<string, unknown> = tokens.claims() ?? {};
      const id = claims[s.userClaim];
      const role = claims[s.roleClaim];
      if (typeof id !== 'string' || id === '' || id.length > 128) throw new Error(`the ID token has no valid ${s.userClaim} claim`);
      if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new Error(`the ID token has no valid ${s.roleClaim} claim`);
      return { id, role: role as Role };
    },
  };
}

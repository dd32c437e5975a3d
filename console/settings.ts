/**
 * How the console signs people in, decided once at start-up from the configuration.
 * OpenID Connect (authorization code with PKCE) when OIDC_ISSUER is set: OIDC_CLIENT_ID and
 * CONSOLE_URL are then required. The development sign-in (pick a role and a user id) exists only
 * with DEV_SIGN_IN=true, a loopback listener and no OIDC_ISSUER (contract 1.1 §9); any other
 * combination with DEV_SIGN_IN=true is refused: the service does not start.
 */
export interface OidcSettings {
  issuer: string;
  clientId: string;
  /** none: a public client (PKCE only) */
  clientSecret?: string;
  /** where the identity provider sends the browser back: CONSOLE_URL + /sign-in/callback */
  redirectUri: string;
  /** claims naming the user id and the role (JWT_USER_CLAIM, JWT_ROLE_CLAIM: the API's settings) */
  userClaim: string;
  roleClaim: string;
}

export interface ConsoleSettings {
  devSignIn: boolean;
  /** the session cookie is Secure (false only for plain http on a loopback address) */
  secureCookie: boolean;
  oidc?: OidcSettings | null;
  /** XYZ raster tiles of the maps (MAP_TILE_URL); null: a plain background, nothing outside the service */
  mapTiles?: { url: string; attribution: string } | null;
}

export interface ConsoleEnv {
  DEV_SIGN_IN?: boolean;
  HOST: string;
  OIDC_ISSUER?: string;
  OIDC_CLIENT_ID?: string;
  OIDC_CLIENT_SECRET?: string;
  CONSOLE_URL?: string;
  JWT_USER_CLAIM?: string;
  JWT_ROLE_CLAIM?: string;
  MAP_TILE_URL?: string;
  MAP_TILE_ATTRIBUTION?: string;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Why the development sign-in is refused with these settings, or null when it is allowed. */
export function devSignInProblem(env: ConsoleEnv): string | null {
  if (env.OIDC_ISSUER) return 'DEV_SIGN_IN=true is refused when OIDC_ISSUER is set';
  if (!isLoopbackHost(env.HOST)) return `DEV_SIGN_IN=true is refused when the service listens on ${env.HOST} (loopback only)`;
  return null;
}

/** An issuer must be https, or http on a loopback address (tests, a provider on the same machine). */
export function issuerProblem(issuer: string): string | null {
  const u = new URL(issuer);
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return null;
  return 'must be https (http only on a loopback address)';
}

export function consoleSettings(env: ConsoleEnv): ConsoleSettings {
  if (env.DEV_SIGN_IN) {
    const why = devSignInProblem(env);
    if (why) throw new Error(why);
  }
  let oidc: OidcSettings | null = null;
  if (env.OIDC_ISSUER) {
    const why = issuerProblem(env.OIDC_ISSUER);
    if (why) throw new Error(`OIDC_ISSUER ${why}`);
    if (!env.OIDC_CLIENT_ID) throw new Error('OIDC_CLIENT_ID is required with OIDC_ISSUER');
    if (!env.CONSOLE_URL) throw new Error('CONSOLE_URL (the console base URL, e.g. https://tagwatch.example/console) is required with OIDC_ISSUER');
    oidc = {
      issuer: env.OIDC_ISSUER,
      clientId: env.OIDC_CLIENT_ID,
      ...(env.OIDC_CLIENT_SECRET ? { clientSecret: env.OIDC_CLIENT_SECRET } : {}),
      redirectUri: `${env.CONSOLE_URL.replace(/\/$/, '')}/sign-in/callback`,
      userClaim: env.JWT_USER_CLAIM ?? 'sub',
      roleClaim: env.JWT_ROLE_CLAIM ?? 'role',
    };
  }
  const consoleUrl = env.CONSOLE_URL ? new URL(env.CONSOLE_URL) : null;
  const plainLoopback = consoleUrl ? consoleUrl.protocol === 'http:' && isLoopbackHost(consoleUrl.hostname) : isLoopbackHost(env.HOST);
  const mapTiles = env.MAP_TILE_URL ? { url: env.MAP_TILE_URL, attribution: env.MAP_TILE_ATTRIBUTION ?? '' } : null;
  return { devSignIn: !!env.DEV_SIGN_IN, secureCookie: !plainLoopback, oidc, mapTiles };
}

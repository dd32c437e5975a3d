/**
 * How the console signs people in, decided once at start-up from the configuration.
 * The development sign-in (pick a role and a user id) exists only with DEV_SIGN_IN=true, a
 * loopback listener and no OIDC_ISSUER (contract 1.1 §9); any other combination with
 * DEV_SIGN_IN=true is refused: the service does not start.
 */
export interface ConsoleSettings {
  devSignIn: boolean;
  /** the session cookie is Secure (false only for plain http on a loopback address) */
  secureCookie: boolean;
}

export interface ConsoleEnv {
  DEV_SIGN_IN?: boolean;
  HOST: string;
  OIDC_ISSUER?: string;
  CONSOLE_URL?: string;
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

export function consoleSettings(env: ConsoleEnv): ConsoleSettings {
  if (env.DEV_SIGN_IN) {
    const why = devSignInProblem(env);
    if (why) throw new Error(why);
  }
  const consoleUrl = env.CONSOLE_URL ? new URL(env.CONSOLE_URL) : null;
  const plainLoopback = consoleUrl ? consoleUrl.protocol === 'http:' && isLoopbackHost(consoleUrl.hostname) : isLoopbackHost(env.HOST);
  return { devSignIn: !!env.DEV_SIGN_IN, secureCookie: !plainLoopback };
}

import pino, { type Logger } from 'pino';

/** Paths never written to logs: tokens, passwords and secrets (see docs/security.md). */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.password',
  '*.mqtt_password',
  '*.secret',
  '*.token',
  'password',
  'secret',
  'token',
  'config.JWT_SECRET',
  'config.MQTT_PASSWORD',
  'config.MQTT_ADMIN_PASSWORD',
  'config.SMTP_URL',
  'config.OIDC_CLIENT_SECRET',
  'req.headers.cookie',
  'headers.cookie',
  'cookie',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'tagwatch' } },
    destination,
  );
}

export type { Logger };

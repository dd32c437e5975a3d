import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { hostname } from 'node:os';

/**
 * The one schema of the service's configuration (contract §7). The `Config` type derives from
 * it; `loadConfig` is the only reader of `process.env`.
 */
const Url = (protocols: string[], description: string) =>
  Type.String({ pattern: `^(${protocols.join('|')})://\\S+$`, description });

export const ConfigSchema = Type.Object({
  DATABASE_URL: Url(['postgres', 'postgresql'], 'PostgreSQL/TimescaleDB connection URL'),
  REDIS_URL: Url(['redis', 'rediss'], 'Redis URL for the BullMQ queues'),
  MQTT_URL: Url(['mqtt', 'mqtts', 'tcp', 'ws', 'wss'], 'MQTT broker URL'),
  MQTT_USERNAME: Type.Optional(Type.String({ minLength: 1, description: "the service's own broker user" })),
  MQTT_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: "the service's own broker password" })),
  MQTT_ADMIN_USERNAME: Type.Optional(Type.String({ minLength: 1, description: "broker admin (dynamic-security) user: when set, registering a device provisions it at the broker" })),
  MQTT_ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'broker admin password' })),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'HTTP port' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'HTTP listen address' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'HS256 secret (development only), at least 32 characters' })),
  JWT_JWKS_URL: Type.Optional(Url(['https', 'http'], 'JWKS URL of the identity provider (production)')),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36500, default: 2190, description: 'raw readings kept this many days (default 6 years)' }),
  INGEST_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 4, description: 'MQTT connections per ingest process in the shared subscription group' }),
  INGEST_INFLIGHT: Type.Integer({ minimum: 1, maximum: 65535, default: 1000, description: 'most unacknowledged QoS 1 messages per ingest connection (MQTT 5 Receive Maximum)' }),
  INGEST_MAX_PENDING: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 20000, description: 'readings awaiting commit above which ingest stops reading from the broker' }),
  INGEST_MAX_BATCH: Type.Integer({ minimum: 1, maximum: 20000, default: 2000, description: 'most readings written in one database round trip' }),
  INGEST_DB_SLOTS: Type.Integer({ minimum: 1, maximum: 32, default: 2, description: 'concurrent write transactions per ingest process' }),
  INGEST_INSTANCE: Type.String({ pattern: '^[A-Za-z0-9_-]{1,40}$', default: hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40) || 'ingest', description: 'stable id of this ingest process: its MQTT sessions persist under it' }),
  MQTT_SHARE_GROUP: Type.String({ pattern: '^[A-Za-z0-9_-]{1,40}$', default: 'tagwatch', description: 'MQTT shared subscription group' }),
  QUEUE_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_:-]{1,40}$', default: 'tagwatch', description: 'BullMQ key prefix' }),
  ALCOHOL_PARAMS: Type.Optional(
    Type.String({ pattern: '^\\{.*\\}$', description: 'JSON object overriding alcohol rule parameters (alcohol/params.ts), e.g. {"tac_threshold":0.02}' }),
  ),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false, description: 'allow webhook URLs on private or loopback addresses (tests, closed networks)' }),
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 2000, default: 200, description: 'webhook attempts in flight per worker process' }),
  WEBHOOK_RECEIVER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'webhook attempts in flight per receiver (per worker process)' }),
  WEBHOOK_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60000, default: 2000, description: 'time to open a connection to a webhook receiver' }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 500, maximum: 120000, default: 5000, description: 'time for a whole webhook attempt (connect, send, answer)' }),
  WEBHOOK_BREAKER_FAILURES: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: "consecutive failed attempts that open a webhook's circuit breaker" }),
  ESCALATE_AFTER_MINUTES: Type.Integer({ minimum: 1, maximum: 1440, default: 15, description: 'a high alert not acknowledged this long is escalated to supervisors' }),
  SMTP_URL: Type.Optional(Url(['smtp', 'smtps'], 'SMTP server for alert email, e.g. smtp://user:pass@mail.example:587 (STARTTLS when offered; ?tls=required insists) or smtps://…:465; unset: no email')),
  EMAIL_FROM: Type.String({ minLength: 3, maxLength: 200, default: 'tagwatch <alerts@tagwatch.invalid>', description: 'From address of alert email' }),
  CONSOLE_URL: Type.Optional(Url(['https', 'http'], 'base URL of the web console, for links in alert email')),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'PostgreSQL pool size' }),
});

export type Config = Static<typeof ConfigSchema>;

/** Thrown for a bad configuration; its message is the one line start-up prints. */
export class ConfigError extends Error {}

/** Parses the environment once; a missing or malformed setting throws a one-line ConfigError naming it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const v = env[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw));
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const key = first.path.replace(/^\//, '').split('/')[0] || '(config)';
    const present = raw[key] !== undefined;
    const description = (ConfigSchema.properties as Record<string, { description?: string }>)[key]?.description ?? '';
    throw new ConfigError(
      present
        ? `config: ${key} is malformed (${first.message}): expected ${description}`
        : `config: ${key} is missing: set it to the ${description}`,
    );
  }
  const config = withDefaults as Config;
  if (!config.JWT_SECRET && !config.JWT_JWKS_URL) {
    throw new ConfigError('config: JWT_SECRET or JWT_JWKS_URL is missing: set one (JWT_SECRET in development only)');
  }
  return config;
}

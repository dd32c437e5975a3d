import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { hostname } from 'node:os';

/**
 * The one schema of the service's configuration (contract §7). The `Config` type derives from
 * it; `loadConfig` is the only reader of `process.env`.
 */
const Url = (protocols: string[], description: string) =>
  Type.String({ pattern: `^(${protocols.join('|')})://\\S+$`, description });

const BROKER_URL = '(mqtt|mqtts|tcp|ws|wss)://[^\\s,]+';

/** The brokers of MQTT_URL (one URL or a comma-separated list), in order. */
export function brokerUrls(mqttUrl: string): string[] {
  return mqttUrl.split(',').map((u) => u.trim()).filter(Boolean);
}

export const ConfigSchema = Type.Object({
  DATABASE_URL: Url(['postgres', 'postgresql'], 'PostgreSQL/TimescaleDB connection URL of the runtime role (INSERT and SELECT only on audit_log)'),
  MIGRATION_DATABASE_URL: Type.Optional(Url(['postgres', 'postgresql'], 'connection URL of the schema owner role: runs migrations and retention; unset: DATABASE_URL does (single-role mode, audit log not append-only against the service)')),
  REDIS_URL: Type.Optional(Url(['redis', 'rediss'], 'Redis URL for the BullMQ queues; with REDIS_SENTINELS only its user, password and database number are used (for the master)')),
  REDIS_SENTINELS: Type.Optional(
    Type.String({ pattern: '^\\s*(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}\\s*(,\\s*(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}\\s*)*$', description: 'Redis Sentinels, host:port,host:port,… ([v6]:port for IPv6): every Redis connection asks them for the current master (REDIS_MASTER_NAME) and follows a failover' }),
  ),
  REDIS_MASTER_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,100}$', description: 'the master name the Sentinels monitor (with REDIS_SENTINELS)' })),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'password of the Sentinels themselves (when they require one; the master\'s is in REDIS_URL)' })),
  MQTT_URL: Type.String({
    pattern: `^${BROKER_URL}(\\s*,\\s*${BROKER_URL})*$`,
    description: 'MQTT broker URL, or a comma-separated list of brokers: ingest subscribes to each (one shared subscription per broker) and devices are provisioned on each',
  }),
  MQTT_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: "PEM file of the CA that signed the broker's TLS certificate, trusted for mqtts:// (besides the system CAs)" })),
  MQTT_USERNAME: Type.Optional(Type.String({ minLength: 1, description: "the service's own broker user" })),
  MQTT_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: "the service's own broker password" })),
  MQTT_ADMIN_USERNAME: Type.Optional(Type.String({ minLength: 1, description: "broker admin (dynamic-security) user: when set, registering a device provisions it at the broker" })),
  MQTT_ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'broker admin password' })),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'HTTP port' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'HTTP listen address' }),
  METRICS_PORT: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 65535, description: 'an ingest or worker process alone (`tagwatch ingest|worker`): serve GET /metrics (admin or supervisor token) and GET /healthz on this port, at HOST' }),
  ),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'HS256 secret (development only), at least 32 characters' })),
  JWT_JWKS_URL: Type.Optional(Url(['https', 'http'], 'JWKS URL of the identity provider (production), https (http only to a loopback address, for tests)')),
  JWT_ISSUER: Type.Optional(Type.String({ pattern: '^\\S{1,500}$', description: "a token's `iss` must equal this; required with JWT_JWKS_URL" })),
  JWT_AUDIENCE: Type.String({ pattern: '^\\S{1,500}$', default: 'tagwatch', description: "a token's `aud` must contain this" }),
  JWT_USER_CLAIM: Type.String({ pattern: '^[A-Za-z0-9_.:/-]{1,100}$', default: 'sub', description: 'name of the claim holding the user id' }),
  JWT_ROLE_CLAIM: Type.String({ pattern: '^[A-Za-z0-9_.:/-]{1,100}$', default: 'role', description: 'name of the claim holding the role' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36500, default: 2190, description: 'personal data (readings, rejections, alerts, deliveries, day results, ended assignments, deleted zones) kept this many days (default 6 years)' }),
  CRIME_TRAIL_CACHE_HOURS: Type.Integer({ minimum: 0, maximum: 168, default: 30, description: 'hours of GPS trails the crime worker keeps in memory with their R-trees (0: off; about 100 bytes a fix, twice that while reloading)' }),
  AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36500, default: 2190, description: 'audit log rows kept this many days (default 6 years), purged by the owner role' }),
  INGEST_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 4, description: 'MQTT connections per ingest process in the shared subscription group' }),
  INGEST_INFLIGHT: Type.Integer({ minimum: 1, maximum: 65535, default: 1000, description: 'most unacknowledged QoS 1 messages per ingest connection (MQTT 5 Receive Maximum)' }),
  INGEST_MAX_PENDING: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 20000, description: 'readings awaiting commit above which ingest stops reading from the broker' }),
  INGEST_MAX_PENDING_BYTES: Type.Integer({ minimum: 1_048_576, maximum: 4_294_967_296, default: 33_554_432, description: 'bytes of MQTT payload received and not yet committed above which ingest stops reading from the broker (default 32 MiB)' }),
  INGEST_MAX_BATCH: Type.Integer({ minimum: 1, maximum: 20000, default: 2000, description: 'most readings written in one database round trip' }),
  INGEST_DB_SLOTS: Type.Integer({ minimum: 1, maximum: 32, default: 2, description: 'concurrent write transactions per ingest process' }),
  INGEST_INSTANCE: Type.String({ pattern: '^[A-Za-z0-9_-]{1,40}$', default: hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40) || 'ingest', description: 'stable id of this ingest process: its MQTT sessions persist under it' }),
  INGEST_SUBSCRIPTION: Type.Union([Type.Literal('shared'), Type.Literal('exclusive')], {
    default: 'shared',
    description: 'shared: INGEST_CONNECTIONS sessions in the MQTT shared subscription group (several ingest processes); exclusive: one ordinary subscription, which Mosquitto keeps across its restart (one ingest process only)',
  }),
  MQTT_SHARE_GROUP: Type.String({ pattern: '^[A-Za-z0-9_-]{1,40}$', default: 'tagwatch', description: 'MQTT shared subscription group' }),
  QUEUE_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_:-]{1,40}$', default: 'tagwatch', description: 'BullMQ key prefix' }),
  ALCOHOL_PARAMS: Type.Optional(
    Type.String({ pattern: '^\\{.*\\}$', description: 'JSON object overriding alcohol rule parameters (alcohol/params.ts), e.g. {"tac_threshold":0.02}' }),
  ),
  ALCOHOL_REVIEW_ROLE: Type.Union([Type.Literal('supervisor'), Type.Literal('offender_manager')], {
    default: 'supervisor',
    description: 'the role that confirms or rejects drinking events and alcohol tampers (supervisor or offender_manager: a manager reviews only their caseload)',
  }),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false, description: 'allow webhook URLs on private or loopback addresses (tests, closed networks)' }),
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 2000, default: 200, description: 'webhook attempts in flight per worker process' }),
  WEBHOOK_RECEIVER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'webhook attempts in flight per receiver (per worker process)' }),
  WEBHOOK_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60000, default: 2000, description: 'time to open a connection to a webhook receiver' }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 500, maximum: 120000, default: 5000, description: 'time for a whole webhook attempt (connect, send, answer)' }),
  WEBHOOK_BREAKER_FAILURES: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: "consecutive failed attempts that open a webhook's circuit breaker" }),
  SECRETS_KEY: Type.Optional(
    Type.String({ pattern: '^([0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$', description: 'key encrypting webhook secrets at rest (AES-256-GCM): 32 bytes as 64 hex digits or base64; required once any webhook exists' }),
  ),
  SUBSCRIPTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 90, description: 'days a webhook or alert-email subscription lasts before its owner must renew it' }),
  WEBHOOKS_PER_USER: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'most webhooks one user may have registered at once' }),
  ESCALATE_AFTER_MINUTES: Type.Integer({ minimum: 1, maximum: 1440, default: 15, description: 'a high alert not acknowledged this long is escalated to supervisors' }),
  SMTP_URL: Type.Optional(Url(['smtp', 'smtps'], 'SMTP server for alert email, e.g. smtp://user:pass@mail.example:587 (STARTTLS when offered; ?tls=required insists) or smtps://…:465; unset: no email')),
  EMAIL_FROM: Type.String({ minLength: 3, maxLength: 200, default: 'tagwatch <alerts@tagwatch.invalid>', description: 'From address of alert email' }),
  CONSOLE_URL: Type.Optional(Url(['https', 'http'], 'base URL of the web console, e.g. https://tagwatch.example/console: links in alert email, the sign-in callback (CONSOLE_URL/sign-in/callback); the session cookie is Secure unless this is http on a loopback address')),
  DEV_SIGN_IN: Type.Boolean({ default: false, description: 'development sign-in page of the console (pick a role and user id): only on a loopback HOST and without OIDC_ISSUER (refused otherwise)' }),
  OIDC_ISSUER: Type.Optional(Url(['https', 'http'], 'OpenID Connect issuer of the console sign-in (authorization code with PKCE); https (http only on loopback); requires OIDC_CLIENT_ID and CONSOLE_URL; the development sign-in is refused when set')),
  OIDC_CLIENT_ID: Type.Optional(Type.String({ pattern: '^\\S{1,500}$', description: 'client id of the console at the identity provider' })),
  OIDC_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, description: 'client secret of the console at the identity provider (unset: a public client, PKCE only)' })),
  MAP_TILE_URL: Type.Optional(Type.String({ pattern: '^https://[^\\s]+\\{z\\}[^\\s]*$', description: 'XYZ raster tiles of the console maps, e.g. https://tiles.example/{z}/{x}/{y}.png (https; its origin is added to the console pages\' img-src); unset: a plain background with a scale line, nothing requested outside the service' })),
  MAP_TILE_ATTRIBUTION: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'attribution text shown on the maps with MAP_TILE_URL, e.g. "© Crown copyright and database rights 2026 OS"' })),
  MONITORING_GPS_FIX_MINUTES: Type.Integer({ minimum: 1, maximum: 120, default: 15, description: 'monitoring integrity: a fitted GPS tag is expected to give a fix at least this often (minutes)' }),
  MONITORING_ALCOHOL_READING_MINUTES: Type.Integer({ minimum: 1, maximum: 240, default: 30, description: 'monitoring integrity: a fitted alcohol tag is expected to give a reading this often (minutes; contract §4: about every 30)' }),
  REEVALUATE_MAX_FIXES: Type.Integer({ minimum: 1, maximum: 5_000_000, default: 500_000, description: 'most fixes one zone re-evaluation (POST /v1/subjects/{id}/reevaluate) reads; a period holding more is refused with 422' }),
  SSE_MAX_PER_USER: Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'most live alert streams (GET /v1/alerts/stream) open at once per user, per API process' }),
  SSE_MAX_TOTAL: Type.Integer({ minimum: 1, maximum: 100000, default: 2000, description: 'most live alert streams open at once per API process' }),
  SSE_REPLAY_MAX: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'most events a resumed live stream replays (Last-Event-ID); older ones are left out and the stream says so' }),
  SSE_REPLAY_HOURS: Type.Integer({ minimum: 1, maximum: 720, default: 24, description: 'a resumed live stream replays no event older than this many hours' }),
  SSE_MAX_BUFFER_BYTES: Type.Integer({ minimum: 1024, maximum: 67108864, default: 1048576, description: 'bytes a live stream may have waiting for a slow client before it is dropped' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'PostgreSQL pool size' }),
});

export type Config = Static<typeof ConfigSchema>;

/** Why a JWKS URL is refused: keys must come over https (http only to a loopback address, for tests), or null. */
export function jwksUrlProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol === 'https:') return null;
  const loopback = ['localhost', '[::1]'].includes(u.hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(u.hostname);
  return u.protocol === 'http:' && loopback ? null : 'it must be https (http only to a loopback address)';
}

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
  if (config.REDIS_SENTINELS && !config.REDIS_MASTER_NAME) {
    throw new ConfigError('config: REDIS_MASTER_NAME is missing: set it to the master name the Sentinels monitor (required with REDIS_SENTINELS)');
  }
  if (!config.REDIS_SENTINELS && !config.REDIS_URL) {
    throw new ConfigError('config: REDIS_URL is missing: set it to the Redis URL for the BullMQ queues (or REDIS_SENTINELS and REDIS_MASTER_NAME)');
  }
  if (!config.JWT_SECRET && !config.JWT_JWKS_URL) {
    throw new ConfigError('config: JWT_SECRET or JWT_JWKS_URL is missing: set one (JWT_SECRET in development only)');
  }
  if (config.JWT_JWKS_URL) {
    const why = jwksUrlProblem(config.JWT_JWKS_URL);
    if (why) throw new ConfigError(`config: JWT_JWKS_URL is malformed (${why})`);
    if (!config.JWT_ISSUER) throw new ConfigError("config: JWT_ISSUER is missing: set it to the identity provider's issuer (required with JWT_JWKS_URL)");
  }
  return config;
}

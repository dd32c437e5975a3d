import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  APP_ROLE,
  ensureDatabaseRoles,
  ensurePackages,
  OWNER_ROLE,
  isRunning,
  startMosquitto,
  startPostgres,
  startRedis,
  stopMosquitto,
  stopPostgres,
  stopRedis,
  writeSecretFile,
} from './stack/services.js';
import { connectBrokerAdmin } from '../registry/dynsec.js';
import { haDown, haLayout, haUp, type HaEnv } from './stack/ha.js';

/**
 * `npm run stack:up` / `stack:down` (contract §7): PostgreSQL, Redis and Mosquitto on loopback
 * from Debian packages, data under .stack/, URLs written to .stack/env. Idempotent. Mosquitto
 * also listens with TLS (STACK_MQTTS_PORT) with a CA and certificate made into .stack/tls/.
 */
export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const STACK_DIR = process.env.STACK_DIR ?? join(ROOT, '.stack');
const PORTS = {
  pg: Number(process.env.STACK_PG_PORT ?? 55432),
  redis: Number(process.env.STACK_REDIS_PORT ?? 56379),
  mqtt: Number(process.env.STACK_MQTT_PORT ?? 51883),
  /** MQTT over TLS, for devices (the plain port stays for the service's own tests and tools) */
  mqtts: Number(process.env.STACK_MQTTS_PORT ?? 58883),
};

/** Where the services that drop privileges keep their files (see serviceDir). */
export const RUN_BASE = process.env.STACK_RUN_BASE ?? '/var/tmp';

/**
 * The directory of one service of this stack. Run as root, PostgreSQL and Mosquitto work as
 * their own users, who cannot enter a checkout under a 0700 directory (/root, mktemp -d): their
 * files then live in a per-checkout directory under /var/tmp named by a hash of STACK_DIR, and
 * .stack/<name> is a symlink to it. As another user (services run as that user) or when
 * .stack/<name> is already a real directory, it is .stack/<name> itself.
 */
export function serviceDir(name: 'postgres' | 'mosquitto' | 'redis' | 'ha'): string {
  const local = join(STACK_DIR, name);
  const asRoot = process.getuid?.() === 0 && name !== 'redis';
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(local);
  } catch {
    stat = undefined;
  }
  if (stat?.isSymbolicLink()) return resolve(STACK_DIR, readlinkSync(local));
  if (stat || !asRoot) return local;
  const hash = createHash('sha256').update(resolve(STACK_DIR)).digest('hex').slice(0, 16);
  const outside = join(RUN_BASE, `tagwatch-stack-${hash}`, name);
  // no link yet, but the directory exists: it belongs to an earlier checkout at this path, deleted
  // without `destroy` (a CI run killed midway). Its services are stopped and its data, with other
  // passwords, goes: adopting it would refuse this checkout's credentials.
  if (existsSync(outside)) {
    if (name === 'postgres') stopPostgres(outside);
    if (name === 'mosquitto') stopMosquitto(outside);
    rmSync(outside, { recursive: true, force: true });
  }
  mkdirSync(outside, { recursive: true, mode: 0o755 });
  symlinkSync(outside, local);
  return outside;
}

export interface StackEnv {
  /** the service's runtime role (tagwatch_app, member of tagwatch_runtime) */
  DATABASE_URL: string;
  /** the schema owner (tagwatch_owner): migrations and retention */
  MIGRATION_DATABASE_URL: string;
  /** the cluster's superuser (trusted on loopback): for the test harness to create databases */
  PG_SUPERUSER_URL: string;
  REDIS_URL: string;
  MQTT_URL: string;
  /** the broker's TLS listener, and the CA file that signed its certificate */
  MQTTS_URL: string;
  MQTT_CA_FILE: string;
  MQTT_USERNAME: string;
  MQTT_PASSWORD: string;
  MQTT_ADMIN_USERNAME: string;
  MQTT_ADMIN_PASSWORD: string;
  JWT_SECRET: string;
  /** key of the webhook secrets at rest (alerts/secrets.ts), made once per stack like JWT_SECRET */
  SECRETS_KEY: string;
  STACK_DIR: string;
  /** with `up --ha`: the Sentinels (host:port,…) and the master's name they watch */
  REDIS_SENTINELS?: string;
  REDIS_MASTER_NAME?: string;
  HA_DIR?: string;
}

export async function stackUp(log: (m: string) => void = console.log): Promise<StackEnv> {
  ensurePackages(log);
  mkdirSync(STACK_DIR, { recursive: true });
  const previous = readStackEnv();
  const secret = () => randomBytes(24).toString('base64url');
  const admin = { adminUser: 'tagwatch-admin', adminPassword: previous?.MQTT_ADMIN_PASSWORD ?? secret() };
  const [pg, redis, mqtt] = await Promise.all([
    startPostgres(serviceDir('postgres'), PORTS.pg),
    startRedis(serviceDir('redis'), PORTS.redis),
    startMosquitto(serviceDir('mosquitto'), PORTS.mqtt, admin, { port: PORTS.mqtts }),
  ]);
  const ingest = { user: 'tagwatch-ingest', password: previous?.MQTT_PASSWORD ?? secret() };
  const brokerAdmin = await connectBrokerAdmin(mqtt.url, admin.adminUser, admin.adminPassword);
  await brokerAdmin.ensureServiceClient(ingest.user, ingest.password);
  await brokerAdmin.close();
  const dbPasswords = { owner: previous?.MIGRATION_DATABASE_URL ? passwordOf(previous.MIGRATION_DATABASE_URL) : secret(), app: previous?.DATABASE_URL ? passwordOf(previous.DATABASE_URL) : secret() };
  await ensureDatabaseRoles(pg.url('postgres'), dbPasswords, ['tagwatch']);
  await adoptSchema(pg.url('tagwatch'));
  const roleUrl = (role: string, password: string) => pg.url().replace('postgres://postgres@', `postgres://${role}:${encodeURIComponent(password)}@`);
  const env: StackEnv = {
    DATABASE_URL: roleUrl(APP_ROLE, dbPasswords.app),
    MIGRATION_DATABASE_URL: roleUrl(OWNER_ROLE, dbPasswords.owner),
    PG_SUPERUSER_URL: pg.url('postgres'),
    REDIS_URL: redis.url,
    MQTT_URL: mqtt.url,
    MQTTS_URL: mqtt.tls!.url,
    MQTT_CA_FILE: mqtt.tls!.caFile,
    MQTT_USERNAME: ingest.user,
    MQTT_PASSWORD: ingest.password,
    MQTT_ADMIN_USERNAME: admin.adminUser,
    MQTT_ADMIN_PASSWORD: admin.adminPassword,
    // development-only HS256 secret, made once per stack
    JWT_SECRET: previous?.JWT_SECRET ?? randomBytes(32).toString('base64url'),
    // development key for webhook secrets at rest; kept across restarts (changing it makes the
    // stored secrets unreadable)
    SECRETS_KEY: previous?.SECRETS_KEY ?? randomBytes(32).toString('base64url'),
    STACK_DIR,
  };
  writeStackEnv(env);
  return env;
}

function writeStackEnv(env: StackEnv): void {
  writeSecretFile(join(STACK_DIR, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
}

/** The HA engines of this stack (.stack/ha), on the STACK_HA_* ports. */
export const stackHaLayout = () => haLayout(serviceDir('ha'));

/**
 * `up --ha`: the light stack (its Mosquitto serves both shapes) and the HA engines, with
 * .stack/env pointing the service at HAProxy and the Sentinels. Idempotent.
 */
export async function stackUpHa(log: (m: string) => void = console.log): Promise<StackEnv & HaEnv> {
  const light = await stackUp(log);
  const ha = await haUp(stackHaLayout(), { owner: passwordOf(light.MIGRATION_DATABASE_URL), app: passwordOf(light.DATABASE_URL) }, log);
  const env = { ...light, ...ha };
  writeStackEnv(env);
  return env;
}

/** Stops the HA engines (when this stack has them). */
export async function stackDownHa(): Promise<void> {
  if (existsSync(join(STACK_DIR, 'ha'))) await haDown(stackHaLayout());
}

/** The password of a postgres:// URL with one (empty when it has none: a stack made before the two roles). */
function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password) || randomBytes(24).toString('base64url');
}

/**
 * A development database migrated before the two roles existed has its tables owned by the
 * superuser: hand them to the owner role so its migrations and grants apply.
 */
async function adoptSchema(superuserUrl: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: superuserUrl });
  await c.connect();
  try {
    const r = await c.query<{ kind: string; name: string }>(
      `SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END AS kind, c.oid::regclass::text AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S') AND pg_get_userbyid(c.relowner) = 'postgres'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))`,
    );
    for (const o of r.rows) await c.query(`ALTER ${o.kind} ${o.name} OWNER TO ${OWNER_ROLE}`);
    const f = await c.query<{ sig: string }>(
      `SELECT p.oid::regprocedure::text AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) = 'postgres'`,
    );
    for (const o of f.rows) await c.query(`ALTER FUNCTION ${o.sig} OWNER TO ${OWNER_ROLE}`);
  } finally {
    await c.end();
  }
}

export function stackDown(): void {
  if (!existsSync(STACK_DIR)) return;
  stopMosquitto(serviceDir('mosquitto'));
  stopRedis(serviceDir('redis'));
  stopPostgres(serviceDir('postgres'));
}

/** Stops the stack and deletes its data: .stack/ and, for a root stack, its directory under /var/tmp. */
export async function stackDestroy(): Promise<void> {
  await stackDownHa();
  stackDown();
  if (!existsSync(STACK_DIR)) return;
  const outside = new Set<string>();
  for (const name of ['postgres', 'mosquitto', 'redis', 'ha'] as const) {
    const local = join(STACK_DIR, name);
    if (existsSync(local) && lstatSync(local).isSymbolicLink()) outside.add(dirname(resolve(STACK_DIR, readlinkSync(local))));
  }
  for (const dir of outside) rmSync(dir, { recursive: true, force: true });
  rmSync(STACK_DIR, { recursive: true, force: true });
}

/** True when all three services of .stack/ are running. */
export function stackRunning(): boolean {
  if (!existsSync(STACK_DIR)) return false;
  return (
    isRunning(join(serviceDir('postgres'), 'data', 'postmaster.pid')) &&
    isRunning(join(serviceDir('redis'), 'redis.pid')) &&
    isRunning(join(serviceDir('mosquitto'), 'mosquitto.pid'))
  );
}

export function readStackEnv(): StackEnv | null {
  const file = join(STACK_DIR, 'env');
  if (!existsSync(file)) return null;
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out as unknown as StackEnv;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2];
  if (cmd === 'up' && process.argv.includes('--ha')) {
    const t0 = Date.now();
    const env = await stackUpHa();
    console.log(`HA stack up in ${Date.now() - t0} ms: PostgreSQL through HAProxy ${env.DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}, Redis Sentinels ${env.REDIS_SENTINELS} (master ${env.REDIS_MASTER_NAME}), Mosquitto ${env.MQTT_URL}`);
    console.log(`environment written to ${join(STACK_DIR, 'env')}`);
  } else if (cmd === 'up') {
    const t0 = Date.now();
    const env = await stackUp();
    console.log(`stack up in ${Date.now() - t0} ms: PostgreSQL ${env.DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}, Redis ${env.REDIS_URL}, Mosquitto ${env.MQTT_URL} and ${env.MQTTS_URL} (TLS, CA ${env.MQTT_CA_FILE})`);
    console.log(`environment written to ${join(STACK_DIR, 'env')}`);
  } else if (cmd === 'status') {
    const up = stackRunning();
    console.log(up ? 'stack running' : 'stack not running');
    process.exit(up ? 0 : 1);
  } else if (cmd === 'down') {
    await stackDownHa();
    stackDown();
    console.log('stack down');
  } else if (cmd === 'destroy') {
    await stackDestroy();
    console.log('stack down, data deleted');
  } else {
    console.error('usage: tsx scripts/stack.ts up [--ha]|down|status|destroy');
    process.exit(2);
  }
}

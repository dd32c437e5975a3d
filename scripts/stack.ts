import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensurePackages,
  isRunning,
  startMosquitto,
  startPostgres,
  startRedis,
  stopMosquitto,
  stopPostgres,
  stopRedis,
} from './stack/services.js';
import { connectBrokerAdmin } from '../registry/dynsec.js';

/**
 * `npm run stack:up` / `stack:down` (contract §7): PostgreSQL, Redis and Mosquitto on loopback
 * from Debian packages, data under .stack/, URLs written to .stack/env. Idempotent.
 */
export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const STACK_DIR = process.env.STACK_DIR ?? join(ROOT, '.stack');
const PORTS = {
  pg: Number(process.env.STACK_PG_PORT ?? 55432),
  redis: Number(process.env.STACK_REDIS_PORT ?? 56379),
  mqtt: Number(process.env.STACK_MQTT_PORT ?? 51883),
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
export function serviceDir(name: 'postgres' | 'mosquitto' | 'redis'): string {
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
  mkdirSync(outside, { recursive: true, mode: 0o755 });
  symlinkSync(outside, local);
  return outside;
}

export interface StackEnv {
  DATABASE_URL: string;
  REDIS_URL: string;
  MQTT_URL: string;
  MQTT_USERNAME: string;
  MQTT_PASSWORD: string;
  MQTT_ADMIN_USERNAME: string;
  MQTT_ADMIN_PASSWORD: string;
  JWT_SECRET: string;
  STACK_DIR: string;
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
    startMosquitto(serviceDir('mosquitto'), PORTS.mqtt, admin),
  ]);
  const ingest = { user: 'tagwatch-ingest', password: previous?.MQTT_PASSWORD ?? secret() };
  const brokerAdmin = await connectBrokerAdmin(mqtt.url, admin.adminUser, admin.adminPassword);
  await brokerAdmin.ensureServiceClient(ingest.user, ingest.password);
  await brokerAdmin.close();
  const env: StackEnv = {
    DATABASE_URL: pg.url(),
    REDIS_URL: redis.url,
    MQTT_URL: mqtt.url,
    MQTT_USERNAME: ingest.user,
    MQTT_PASSWORD: ingest.password,
    MQTT_ADMIN_USERNAME: admin.adminUser,
    MQTT_ADMIN_PASSWORD: admin.adminPassword,
    // development-only HS256 secret, made once per stack
    JWT_SECRET: previous?.JWT_SECRET ?? randomBytes(32).toString('base64url'),
    STACK_DIR,
  };
  writeFileSync(join(STACK_DIR, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
  return env;
}

export function stackDown(): void {
  if (!existsSync(STACK_DIR)) return;
  stopMosquitto(serviceDir('mosquitto'));
  stopRedis(serviceDir('redis'));
  stopPostgres(serviceDir('postgres'));
}

/** Stops the stack and deletes its data: .stack/ and, for a root stack, its directory under /var/tmp. */
export function stackDestroy(): void {
  stackDown();
  if (!existsSync(STACK_DIR)) return;
  const outside = new Set<string>();
  for (const name of ['postgres', 'mosquitto', 'redis'] as const) {
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
  if (cmd === 'up') {
    const t0 = Date.now();
    const env = await stackUp();
    console.log(`stack up in ${Date.now() - t0} ms: PostgreSQL ${env.DATABASE_URL}, Redis ${env.REDIS_URL}, Mosquitto ${env.MQTT_URL}`);
    console.log(`environment written to ${join(STACK_DIR, 'env')}`);
  } else if (cmd === 'status') {
    const up = stackRunning();
    console.log(up ? 'stack running' : 'stack not running');
    process.exit(up ? 0 : 1);
  } else if (cmd === 'down') {
    stackDown();
    console.log('stack down');
  } else if (cmd === 'destroy') {
    stackDestroy();
    console.log('stack down, data deleted');
  } else {
    console.error('usage: tsx scripts/stack.ts up|down|status|destroy');
    process.exit(2);
  }
}

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
    startPostgres(join(STACK_DIR, 'postgres'), PORTS.pg),
    startRedis(join(STACK_DIR, 'redis'), PORTS.redis),
    startMosquitto(join(STACK_DIR, 'mosquitto'), PORTS.mqtt, admin),
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
  stopMosquitto(join(STACK_DIR, 'mosquitto'));
  stopRedis(join(STACK_DIR, 'redis'));
  stopPostgres(join(STACK_DIR, 'postgres'));
}

/** True when all three services of .stack/ are running. */
export function stackRunning(): boolean {
  return (
    isRunning(join(STACK_DIR, 'postgres', 'data', 'postmaster.pid')) &&
    isRunning(join(STACK_DIR, 'redis', 'redis.pid')) &&
    isRunning(join(STACK_DIR, 'mosquitto', 'mosquitto.pid'))
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
  } else {
    console.error('usage: tsx scripts/stack.ts up|down|status');
    process.exit(2);
  }
}

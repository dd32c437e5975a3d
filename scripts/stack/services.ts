import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import { MAX_PAYLOAD_BYTES } from '../../ingest/telemetry.js';
import { ensureCertificates, type TlsFiles } from './tls.js';

/** MQTT packet limit at the broker, bytes: the 256 KiB payload plus room for header, topic and properties (ingest/consumer.ts MAX_PACKET_BYTES). */
const MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024;

/**
 * Real PostgreSQL, Redis and Mosquitto from Debian packages, on loopback, with data in a
 * throwaway directory. Used by `npm run stack:up`, the tests and the benchmarks alike.
 */

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const PACKAGES: Array<{ bin: string; pkg: string }> = [
  { bin: `${PG_BIN}/postgres`, pkg: 'postgresql-15' },
  { bin: '/usr/bin/psql', pkg: 'postgresql-client-15' },
  { bin: '/usr/bin/redis-server', pkg: 'redis-server' },
  { bin: '/usr/sbin/mosquitto', pkg: 'mosquitto' },
  { bin: '/usr/bin/mosquitto_pub', pkg: 'mosquitto-clients' },
];

/** Installs the Debian packages that are missing (needs root, as on these machines). */
export function ensurePackages(log: (m: string) => void = console.log): void {
  const missing = PACKAGES.filter((p) => !existsSync(p.bin)).map((p) => p.pkg);
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}

export function run(cmd: string, args: string[], opts: { asUser?: string; allowFail?: boolean } = {}): string {
  const [c, a] = opts.asUser && process.getuid?.() === 0 ? ['runuser', ['-u', opts.asUser, '--', cmd, ...args]] : [cmd, args];
  // cwd '/': initdb and postgres change back to their working directory, which a service user
  // cannot enter when the checkout sits in a 0700 directory (/root, mktemp -d)
  const r = spawnSync(c, a, { encoding: 'utf8', cwd: '/' });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export function chownTo(user: string, ...paths: string[]): void {
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', `${user}:${user}`, ...paths]);
}

export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** True when the process named by the pid file's first line is alive. */
export function isRunning(pidFile: string): boolean {
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface PgHandle {
  dir: string;
  port: number;
  url: (db?: string) => string;
}

/** Starts (initialising when new) a PostgreSQL cluster as user postgres; idempotent. */
export async function startPostgres(dir: string, port: number): Promise<PgHandle> {
  const data = join(dir, 'data');
  const sock = join(dir, 'run');
  mkdirSync(sock, { recursive: true });
  chownTo('postgres', dir);
  if (!existsSync(join(data, 'PG_VERSION'))) {
    run(`${PG_BIN}/initdb`, ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], { asUser: 'postgres' });
  }
  // Loopback only; the superuser (used by the stack and the test harness to create databases and
  // roles) is trusted, every other role gives its password (scram), as in a deployment.
  const hba = join(data, 'pg_hba.conf');
  const changedHba = readFileSync(hba, 'utf8') !== PG_HBA;
  if (changedHba) writeFileSync(hba, PG_HBA);
  if (!isRunning(join(data, 'postmaster.pid'))) {
    const opts = [
      `-p ${port}`,
      `-k ${sock}`,
      `-c listen_addresses=127.0.0.1`,
      `-c shared_buffers=256MB`,
      `-c max_connections=300`,
      `-c max_wal_size=2GB`,
      `-c timezone=UTC`,
    ].join(' ');
    run(`${PG_BIN}/pg_ctl`, ['-D', data, '-l', join(dir, 'postgres.log'), '-o', opts, '-w', '-t', '60', 'start'], { asUser: 'postgres' });
  }
  else if (changedHba) run(`${PG_BIN}/pg_ctl`, ['-D', data, 'reload'], { asUser: 'postgres' });
  await waitForPort(port);
  const handle: PgHandle = { dir, port, url: (db = 'tagwatch') => `postgres://postgres@127.0.0.1:${port}/${db}` };
  const exists = run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-tAc', `SELECT 1 FROM pg_database WHERE datname='tagwatch'`]);
  if (!exists.trim()) run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'CREATE DATABASE tagwatch']);
  return handle;
}

const PG_HBA = [
  'local all postgres trust',
  'host all postgres 127.0.0.1/32 trust',
  'host all postgres ::1/128 trust',
  'local all all scram-sha-256',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host all all ::1/128 scram-sha-256',
  '',
].join('\n');

/** The two login roles of a two-role deployment (README "Security model"). */
export const OWNER_ROLE = 'tagwatch_owner';
export const APP_ROLE = 'tagwatch_app';

/**
 * Creates (or updates the passwords of) the schema owner role and the service's runtime login
 * role, a member of tagwatch_runtime (the group the migrations grant to), and makes the owner
 * role own `databases`. `superuserUrl` connects as the superuser. Idempotent.
 */
export async function ensureDatabaseRoles(superuserUrl: string, passwords: { owner: string; app: string }, databases: string[]): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: superuserUrl });
  await c.connect();
  try {
    const exists = async (role: string) => (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [role])).rowCount === 1;
    for (const [role, password] of [[OWNER_ROLE, passwords.owner], [APP_ROLE, passwords.app]] as const) {
      await c.query(`${(await exists(role)) ? 'ALTER' : 'CREATE'} ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${c.escapeLiteral(password)}`);
    }
    if (!(await exists('tagwatch_runtime'))) await c.query(`CREATE ROLE tagwatch_runtime NOLOGIN`);
    await c.query(`GRANT tagwatch_runtime TO ${APP_ROLE}`);
    for (const db of databases) await c.query(`ALTER DATABASE "${db}" OWNER TO ${OWNER_ROLE}`);
  } finally {
    await c.end();
  }
}

/** Stops a cluster: `fast` (clients cut, clean) by default, `immediate` to simulate a crash. */
export function stopPostgres(dir: string, mode: 'fast' | 'immediate' = 'fast'): void {
  const data = join(dir, 'data');
  if (!isRunning(join(data, 'postmaster.pid'))) return;
  run(`${PG_BIN}/pg_ctl`, ['-D', data, '-m', mode, '-w', 'stop'], { asUser: 'postgres', allowFail: true });
}

export interface RedisHandle {
  dir: string;
  port: number;
  url: string;
}

export async function startRedis(dir: string, port: number): Promise<RedisHandle> {
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dir, 'redis.pid');
  if (!isRunning(pidFile)) {
    run('redis-server', [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--protected-mode', 'yes',
      '--dir', dir,
      '--daemonize', 'yes',
      '--pidfile', pidFile,
      '--logfile', join(dir, 'redis.log'),
      '--appendonly', 'yes',
      '--save', '',
    ]);
  }
  await waitForPort(port);
  return { dir, port, url: `redis://127.0.0.1:${port}` };
}

export function stopRedis(dir: string): void {
  stopByPidFile(join(dir, 'redis.pid'));
}

export interface MosquittoHandle {
  dir: string;
  port: number;
  url: string;
  /** with TLS: the mqtts:// URL and the CA that signed the broker's certificate */
  tls?: { port: number; url: string; caFile: string };
}

export const DYNSEC_PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

/**
 * The broker settings the ingest design relies on (see docs/ingest.md). With `dynsec`,
 * no anonymous access: device identity through the dynamic-security plugin (docs/security.md);
 * without it (tests of other features, benchmarks), anonymous access on loopback.
 */
export function mosquittoConf(dir: string, port: number, dynsec = false, tls?: { port: number; files: TlsFiles }): string {
  return [
    `listener ${port} 127.0.0.1`,
    ...(dynsec ? ['allow_anonymous false', `plugin ${DYNSEC_PLUGIN}`, `plugin_opt_config_file ${join(dir, 'dynamic-security.json')}`] : ['allow_anonymous true']),
    'persistence true',
    `persistence_location ${join(dir, 'data')}/`,
    'autosave_interval 5',
    `pid_file ${join(dir, 'mosquitto.pid')}`,
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    // Ingest's MQTT 5 sessions set their own in-flight window (Receive Maximum,
    // INGEST_INFLIGHT); this limit is for MQTT 3.1.1 subscribers. The queue of an offline or
    // slow session must not drop QoS 1 messages while the database is down.
    'max_inflight_messages 100',
    // Contract §1: a payload is at most 256 KiB. Larger publishes are refused at the broker
    // (MQTT 5: PUBACK 0x97), and a packet beyond payload + 1 KiB of header and topic
    // disconnects its sender, so no device can make ingest hold more (issue 9, finding 5).
    `message_size_limit ${MAX_PAYLOAD_BYTES}`,
    `max_packet_size ${MAX_PACKET_BYTES}`,
    'max_queued_messages 0',
    'max_queued_bytes 0',
    'persistent_client_expiration 30d',
    // MQTT over TLS for devices (issue 9, finding 14): their passwords never cross in clear.
    // The plain listener above stays on loopback for the service's own tests and tools.
    ...(tls
      ? [
          `listener ${tls.port} 127.0.0.1`,
          `cafile ${tls.files.caFile}`,
          `certfile ${tls.files.certFile}`,
          `keyfile ${tls.files.keyFile}`,
          'tls_version tlsv1.2',
        ]
      : []),
    '',
  ].join('\n');
}

/**
 * Starts (idempotent) a Mosquitto with its data in `dir`; with `tls`, also a TLS listener whose
 * CA and server certificate are made in `tls.dir` (default `dir`/tls) when missing.
 */
export async function startMosquitto(
  dir: string,
  port: number,
  dynsec?: { adminUser: string; adminPassword: string },
  tls?: { port: number; dir?: string },
): Promise<MosquittoHandle> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const conf = join(dir, 'mosquitto.conf');
  const files = tls ? ensureCertificates(tls.dir ?? join(dir, 'tls')) : undefined;
  const text = mosquittoConf(dir, port, !!dynsec, tls && files ? { port: tls.port, files } : undefined);
  const changed = !existsSync(conf) || readFileSync(conf, 'utf8') !== text;
  if (changed && isRunning(join(dir, 'mosquitto.pid'))) {
    stopMosquitto(dir); // a running broker with other settings is restarted with these
    if (isRunning(join(dir, 'mosquitto.pid'))) throw new Error(`the broker in ${dir} runs with other settings and did not stop`);
  }
  writeFileSync(conf, text);
  const dynsecFile = join(dir, 'dynamic-security.json');
  if (dynsec && !existsSync(dynsecFile)) run('mosquitto_ctrl', ['dynsec', 'init', dynsecFile, dynsec.adminUser, dynsec.adminPassword]);
  if (existsSync(dynsecFile)) chmodSync(dynsecFile, 0o600); // password hashes: whatever mode it had before
  chownTo('mosquitto', dir);
  // the broker (which drops to user mosquitto) reads its key; the CA key stays with its maker
  if (files) chownTo('mosquitto', files.keyFile);
  if (files && process.getuid?.() === 0) execFileSync('chown', ['root:root', join(files.dir, 'ca.key')]);
  if (!isRunning(join(dir, 'mosquitto.pid'))) run('mosquitto', ['-c', conf, '-d']);
  await waitForPort(port);
  if (tls) await waitForPort(tls.port);
  return {
    dir,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    ...(tls && files ? { tls: { port: tls.port, url: `mqtts://127.0.0.1:${tls.port}`, caFile: files.caFile } } : {}),
  };
}

export function stopMosquitto(dir: string): void {
  stopByPidFile(join(dir, 'mosquitto.pid'));
}

function stopByPidFile(pidFile: string): void {
  if (!isRunning(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    execFileSync('sleep', ['0.05']);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** Writes a file of secrets readable by its owner only (0600), also when it existed with another mode. */
export function writeSecretFile(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 }); // the mode applies only when the file is created
  chmodSync(file, 0o600);
}

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon, stopDaemon } from './daemon.js';
import { isRunning, waitForPort } from './services.js';

/**
 * The highly available PostgreSQL of `npm run stack:up -- --ha` (issue 14 §2): one etcd (the
 * store Patroni elects its leader in), two PostgreSQL 15 nodes managed by Patroni with
 * synchronous replication, and HAProxy routing to whichever node Patroni's REST API calls
 * primary. All on loopback; data in `dir`.
 */

const PG_BIN = '/usr/lib/postgresql/15/bin';
export const SCOPE = 'tagwatch';

export interface HaPgPorts {
  /** HAProxy: the service's one address, always the current primary */
  haproxy: number;
  /** HAProxy's statistics page (HTTP) */
  stats: number;
  etcdClient: number;
  etcdPeer: number;
  /** per node: PostgreSQL and Patroni's REST API */
  nodes: Array<{ pg: number; rest: number }>;
}

export function haPgPorts(env: NodeJS.ProcessEnv = process.env): HaPgPorts {
  const pg = Number(env.STACK_HA_PG_PORT ?? 55440);
  const rest = Number(env.STACK_HA_REST_PORT ?? 58008);
  const etcd = Number(env.STACK_HA_ETCD_PORT ?? 52381);
  return {
    haproxy: pg,
    stats: rest,
    etcdClient: etcd,
    etcdPeer: etcd + 1,
    nodes: [1, 2].map((i) => ({ pg: pg + i, rest: rest + i })),
  };
}

export const nodeName = (i: number) => `pg${i + 1}`;

function startEtcd(dir: string, ports: HaPgPorts): void {
  const d = join(dir, 'etcd');
  mkdirSync(d, { recursive: true });
  const client = `http://127.0.0.1:${ports.etcdClient}`;
  const peer = `http://127.0.0.1:${ports.etcdPeer}`;
  startDaemon(
    'etcd',
    [
      '--name', 'tagwatch-etcd',
      '--data-dir', join(d, 'data'),
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `tagwatch-etcd=${peer}`,
      '--enable-v2=true',
    ],
    { pidFile: join(d, 'etcd.pid'), logFile: join(d, 'etcd.log') },
  );
}

/** Patroni's configuration of node `i` (YAML; JSON is YAML). */
export function patroniConfig(dir: string, ports: HaPgPorts, i: number, passwords: { superuser: string; replication: string }): object {
  const node = ports.nodes[i]!;
  const d = join(dir, nodeName(i));
  const hba = [
    'local all postgres trust',
    'host all postgres 127.0.0.1/32 trust',
    'host replication replicator 127.0.0.1/32 scram-sha-256',
    'local all all scram-sha-256',
    'host all all 127.0.0.1/32 scram-sha-256',
  ];
  return {
    scope: SCOPE,
    name: nodeName(i),
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${node.rest}`, connect_address: `127.0.0.1:${node.rest}` },
    etcd3: { hosts: [`127.0.0.1:${ports.etcdClient}`] },
    bootstrap: {
      // cluster-wide settings, written to etcd once by the node that initialises the cluster.
      // Seconds. A crashed primary is failed over at once (primary_start_timeout 0), which is
      // safe because synchronous_mode only promotes the synchronous standby.
      dcs: {
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 5,
        primary_start_timeout: 0,
        master_start_timeout: 0,
        synchronous_mode: true,
        maximum_lag_on_failover: 1048576,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            wal_level: 'replica',
            wal_log_hints: 'on',
            hot_standby: 'on',
            max_connections: 300,
            max_wal_senders: 10,
            max_replication_slots: 10,
            shared_buffers: '128MB',
            max_wal_size: '1GB',
            timezone: 'UTC',
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }],
    },
    postgresql: {
      listen: `127.0.0.1:${node.pg}`,
      connect_address: `127.0.0.1:${node.pg}`,
      data_dir: join(d, 'data'),
      bin_dir: PG_BIN,
      pgpass: join(d, 'pgpass'),
      authentication: {
        superuser: { username: 'postgres', password: passwords.superuser },
        replication: { username: 'replicator', password: passwords.replication },
        rewind: { username: 'postgres', password: passwords.superuser },
      },
      parameters: { unix_socket_directories: join(d, 'run') },
      pg_hba: hba,
      remove_data_directory_on_rewind_failure: true,
      remove_data_directory_on_diverged_timelines: true,
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
}

/** HAProxy: one frontend to the node whose Patroni answers 200 on /primary. */
export function haproxyConfig(dir: string, ports: HaPgPorts): string {
  return [
    'global',
    '  maxconn 1000',
    `  pidfile ${join(dir, 'haproxy', 'haproxy.pid')}`,
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    // the service's pooled connections sit idle between queries: no client/server idle limit
    '  timeout client 24h',
    '  timeout server 24h',
    'listen stats',
    '  mode http',
    `  bind 127.0.0.1:${ports.stats}`,
    '  stats enable',
    '  stats uri /',
    'listen primary',
    `  bind 127.0.0.1:${ports.haproxy}`,
    '  option httpchk OPTIONS /primary',
    '  http-check expect status 200',
    // health check every 0.5 s; down after 2 failures; connections to a demoted node are cut
    '  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions',
    ...ports.nodes.map((n, i) => `  server ${nodeName(i)} 127.0.0.1:${n.pg} maxconn 300 check port ${n.rest}`),
    '',
  ].join('\n');
}

/** Writes `text` unless the file holds it already; true when it changed. */
function writeIfChanged(file: string, text: string): boolean {
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return false;
  writeFileSync(file, text);
  return true;
}

/** Starts etcd, both Patroni nodes and HAProxy (idempotent); resolves when a primary answers through HAProxy. */
export async function startHaPostgres(dir: string, ports: HaPgPorts, passwords: { superuser: string; replication: string }, chown: (path: string) => void): Promise<void> {
  startEtcd(dir, ports);
  await waitForPort(ports.etcdClient, 30_000);
  for (let i = 0; i < ports.nodes.length; i++) {
    const d = join(dir, nodeName(i));
    mkdirSync(join(d, 'run'), { recursive: true });
    const conf = join(d, 'patroni.yml');
    const changed = writeIfChanged(conf, JSON.stringify(patroniConfig(dir, ports, i, passwords), null, 2));
    chmodSync(conf, 0o600);
    chown(d);
    const pidFile = join(d, 'patroni.pid');
    if (changed && isRunning(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGHUP'); // Patroni reloads its file
    startDaemon('patroni', [conf], { pidFile, logFile: join(d, 'patroni.log'), asUser: 'postgres' });
  }
  const hp = join(dir, 'haproxy');
  mkdirSync(hp, { recursive: true });
  const cfg = join(hp, 'haproxy.cfg');
  if (writeIfChanged(cfg, haproxyConfig(dir, ports))) await stopDaemon(join(hp, 'haproxy.pid')); // started again below with it
  // -db: stay in the foreground (startDaemon detaches it and keeps the pid)
  startDaemon('haproxy', ['-db', '-f', cfg], { pidFile: join(hp, 'haproxy.pid'), logFile: join(hp, 'haproxy.log') });
  await waitForPort(ports.haproxy, 30_000);
  await waitForPrimary(ports, 120_000, true);
}

/** Waits until some node's Patroni says it is the primary (and for its synchronous standby when `sync`). */
export async function waitForPrimary(ports: HaPgPorts, timeoutMs: number, sync = false): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const n of ports.nodes) {
      const r = await fetch(`http://127.0.0.1:${n.rest}/cluster`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      if (!r?.ok) continue;
      const body = (await r.json()) as { members?: Array<{ name: string; role: string; state: string }> };
      const members = body.members ?? [];
      const leader = members.find((m) => m.role === 'leader' && m.state === 'running');
      const standby = members.find((m) => m.role === 'sync_standby' && (m.state === 'running' || m.state === 'streaming'));
      if (leader && (!sync || standby)) {
        const ok = await fetch(`http://127.0.0.1:${ports.nodes[Number(leader.name.slice(2)) - 1]!.rest}/primary`, { signal: AbortSignal.timeout(2000) }).then((x) => x.status === 200, () => false);
        if (ok) return leader.name;
      }
    }
    if (Date.now() > deadline) throw new Error(`no PostgreSQL primary${sync ? ' with a synchronous standby' : ''} after ${timeoutMs} ms (see the patroni.log files)`);
    await sleep(500);
  }
}

/** The node name Patroni's REST API reports as leader, or null when none answers. */
export async function currentLeader(ports: HaPgPorts): Promise<string | null> {
  for (const n of ports.nodes) {
    const r = await fetch(`http://127.0.0.1:${n.rest}/cluster`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
    if (!r?.ok) continue;
    const body = (await r.json()) as { members?: Array<{ name: string; role: string }> };
    const leader = body.members?.find((m) => m.role === 'leader');
    if (leader) return leader.name;
  }
  return null;
}

export async function stopHaPostgres(dir: string, ports: HaPgPorts): Promise<void> {
  await stopDaemon(join(dir, 'haproxy', 'haproxy.pid'));
  // Patroni stops its PostgreSQL on SIGTERM; the standbys first, so the primary is not failed over
  const leader = await currentLeader(ports);
  const order = ports.nodes.map((_, i) => i).sort((a, b) => Number(nodeName(a) === leader) - Number(nodeName(b) === leader));
  for (const i of order) await stopDaemon(join(dir, nodeName(i), 'patroni.pid'), 60_000);
  await stopDaemon(join(dir, 'etcd', 'etcd.pid'));
}

export const haPgExists = (dir: string) => existsSync(join(dir, 'etcd'));

/**
 * Backups and point-in-time recovery with pgBackRest (Debian `pgbackrest`): a throwaway
 * PostgreSQL cluster on loopback that archives every WAL segment to a pgBackRest repository,
 * full backups, and restores to a chosen time or to the end of the archive. Used by
 * test/recovery/pitr.test.ts (the measured RPO and RTO in docs/operations.md); the same settings
 * for a deployment are in deploy/pgbackrest/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PG_BIN, chownTo, freePort, isRunning, run, waitForPort } from '../stack/services.js';
import { RUN_BASE } from '../stack.js';

export const STANZA = 'tagwatch';
const PGBACKREST = '/usr/bin/pgbackrest';

/** Installs Debian's pgbackrest when missing (root, or sudo). */
export function ensurePgbackrest(): void {
  if (existsSync(PGBACKREST)) return;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (...args: string[]) => execFileSync(sudo[0] ?? 'apt-get', [...(sudo.length ? ['apt-get'] : []), '-o', 'DPkg::Lock::Timeout=300', ...args], { stdio: 'inherit', env });
  try {
    apt('install', '-y', '-qq', '--no-install-recommends', 'pgbackrest');
  } catch {
    apt('update', '-qq');
    apt('install', '-y', '-qq', '--no-install-recommends', 'pgbackrest');
  }
}

export interface ArchivedCluster {
  dir: string;
  port: number;
  url: (db?: string) => string;
  /** runs pgbackrest with this cluster's configuration (as the cluster's owner) */
  pgbackrest: (...args: string[]) => string;
  start: () => Promise<void>;
  /** stops PostgreSQL: `immediate` is a crash */
  stop: (mode?: 'fast' | 'immediate') => void;
  /** the server is lost: its data directory is deleted (the repository stays) */
  destroyData: () => void;
  /** restores the data directory from the repository: to `target` (a time), or to the end of the archive */
  restore: (target?: Date) => void;
  remove: () => void;
}

const user = () => (process.getuid?.() === 0 ? 'postgres' : undefined);

/**
 * A new cluster whose WAL is archived by pgBackRest; `archiveTimeoutS` forces a segment switch
 * after that many seconds of activity (the most WAL an archive can miss when the server is lost).
 */
export async function archivedCluster(archiveTimeoutS: number): Promise<ArchivedCluster> {
  ensurePgbackrest();
  mkdirSync(RUN_BASE, { recursive: true });
  const dir = mkdtempSync(join(RUN_BASE, 'tagwatch-pitr-'));
  const port = await freePort();
  const data = join(dir, 'data');
  const sock = join(dir, 'run');
  const conf = join(dir, 'pgbackrest.conf');
  for (const d of ['run', 'repo', 'log', 'lock', 'spool']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    conf,
    [
      '[global]',
      `repo1-path=${join(dir, 'repo')}`,
      'repo1-retention-full=2',
      `log-path=${join(dir, 'log')}`,
      `lock-path=${join(dir, 'lock')}`,
      `spool-path=${join(dir, 'spool')}`,
      'log-level-console=warn',
      'log-level-file=info',
      'start-fast=y',
      'compress-type=lz4',
      '',
      `[${STANZA}]`,
      `pg1-path=${data}`,
      `pg1-port=${port}`,
      `pg1-socket-path=${sock}`,
      '',
    ].join('\n'),
  );
  chownTo('postgres', dir);
  const as = { asUser: user() };
  run(`${PG_BIN}/initdb`, ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], as);
  const settings = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${sock}'`,
    wal_level: 'replica',
    archive_mode: 'on',
    archive_command: `'${PGBACKREST} --config=${conf} --stanza=${STANZA} archive-push %p'`,
    archive_timeout: String(archiveTimeoutS),
    max_wal_senders: '3',
    timezone: 'UTC',
  };
  const auto = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
  writeFileSync(join(data, 'postgresql.auto.conf'), auto);
  chownTo('postgres', dir);

  const pgbackrest = (...args: string[]) => run(PGBACKREST, [`--config=${conf}`, `--stanza=${STANZA}`, ...args], as);
  const start = async () => {
    if (!isRunning(join(data, 'postmaster.pid'))) run(`${PG_BIN}/pg_ctl`, ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '120', 'start'], as);
    await waitForPort(port, 60_000);
  };
  const stop = (mode: 'fast' | 'immediate' = 'fast') => {
    if (isRunning(join(data, 'postmaster.pid'))) run(`${PG_BIN}/pg_ctl`, ['-D', data, '-m', mode, '-w', 'stop'], { ...as, allowFail: true });
  };
  await start();
  pgbackrest('stanza-create');
  return {
    dir,
    port,
    url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
    pgbackrest,
    start,
    stop,
    destroyData: () => {
      rmSync(data, { recursive: true, force: true });
      mkdirSync(data, { mode: 0o700 });
      chownTo('postgres', data);
    },
    restore: (target?: Date) => {
      const to = target ? ['--type=time', `--target=${target.toISOString().replace('T', ' ').replace('Z', '+00')}`, '--target-action=promote'] : [];
      pgbackrest('restore', '--delta', ...to);
    },
    remove: () => {
      stop('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { isRunning } from './services.js';

/**
 * Starting and stopping the long-running programs of the HA stack (etcd, Patroni, HAProxy) that
 * do not daemonise themselves: detached, output appended to a log file, pid in a pid file.
 */

/** uid and gid of a system user (root only: the programs run as that user). */
export function userIds(user: string): { uid: number; gid: number } {
  return { uid: Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', user], { encoding: 'utf8' })) };
}

/** Spawns `cmd` detached (idempotent: nothing when the pid file names a live process). */
export function startDaemon(cmd: string, args: string[], opts: { pidFile: string; logFile: string; asUser?: string; env?: NodeJS.ProcessEnv }): void {
  if (isRunning(opts.pidFile)) return;
  const out = openSync(opts.logFile, 'a');
  const ids = opts.asUser && process.getuid?.() === 0 ? userIds(opts.asUser) : {};
  const child = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', out, out],
    // '/': a service user cannot enter a checkout under a 0700 directory
    cwd: '/',
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8', HOME: 'uid' in ids ? '/' : process.env.HOME, ...opts.env },
    ...ids,
  });
  closeSync(out);
  if (!child.pid) throw new Error(`${cmd} did not start`);
  writeFileSync(opts.pidFile, `${child.pid}\n`);
  child.unref();
}

/** SIGTERM, then SIGKILL after `graceMs`; waits until the process is gone. */
export async function stopDaemon(pidFile: string, graceMs = 15_000): Promise<void> {
  if (!existsSync(pidFile) || !isRunning(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
  while (alive()) await new Promise((r) => setTimeout(r, 50));
}

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceDir } from '../../scripts/stack.js';
import { processMemory } from '../common/sample.js';

/**
 * Resident memory of the soak's processes, from /proc (Linux), in MiB. A single process is its
 * VmRSS. PostgreSQL is the stack's postmaster and every process it forked (backends, WAL writer,
 * checkpointer …), summed as PSS (proportional set size, /proc/PID/smaps_rollup): the shared
 * buffers are counted once, shared among the backends that touched them, not once per backend.
 */

const MiB = 1024 * 1024;

export function rssMiB(pid: number): number {
  const b = processMemory(pid, 'VmRSS');
  return b === null ? NaN : b / MiB;
}

/** Pss of one process in bytes, or null when it is gone or unreadable. */
export function pssBytes(pid: number): number | null {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The children of `parent` (PPid from /proc/PID/status). */
export function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      if (m && Number(m[1]) === parent) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

const firstLineInt = (file: string) => Number(readFileSync(file, 'utf8').split('\n')[0]!.trim());

/** The stack's postmaster and Redis pids (their pid files under the stack's service directories). */
export function stackPids(): { postmaster: number; redis: number } {
  return {
    postmaster: firstLineInt(join(serviceDir('postgres'), 'data', 'postmaster.pid')),
    redis: firstLineInt(join(serviceDir('redis'), 'redis.pid')),
  };
}

/** PostgreSQL's memory: PSS of the postmaster and all its children, MiB. */
export function postgresPssMiB(postmaster: number): number {
  let sum = 0;
  for (const pid of [postmaster, ...childPids(postmaster)]) sum += pssBytes(pid) ?? 0;
  return sum / MiB;
}

/** One reading per process group: single pids as RSS, `postgres` as the cluster's summed PSS. */
export function memorySnapshot(single: Record<string, number>, postmaster: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(single)) out[name] = rssMiB(pid);
  out.postgres = postgresPssMiB(postmaster);
  return out;
}

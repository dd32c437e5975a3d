import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Who used the CPU during a phase, from /proc (Linux): per-process utime+stime, and the whole
 * machine from /proc/stat. 100 % is one core fully busy.
 */

const CLK_TCK = 100; // `getconf CLK_TCK` on Linux x86-64 and arm64

/** utime + stime of a process in clock ticks, or null when it is gone. */
export function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

/** A /proc/<pid>/status memory figure (VmRSS, VmHWM …) in bytes, or null. */
export function processMemory(pid: number, key: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Every process whose command name is `comm` (e.g. all PostgreSQL backends of the cluster). */
export function pidsByName(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

interface MachineTicks {
  busy: number;
  iowait: number;
  total: number;
}

function machineTicks(): MachineTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
  return { busy, iowait: iowait!, total: busy + idle! + iowait! };
}

/** Whole-machine busy CPU over `ms`, percent of one core. */
export async function machineBusy(ms: number): Promise<number> {
  const a = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineTicks();
  return ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100 * cpus().length;
}

/**
 * Waits (at most `maxWaitMs`) until the machine is nearly idle, so a phase does not start
 * while something else (another job on a shared box) holds the CPU. Returns the last reading.
 */
export async function waitForQuiet(maxWaitMs: number, thresholdPct: number, log: (m: string) => void): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let busy = await machineBusy(500);
  if (busy > thresholdPct) log(`machine busy at ${busy.toFixed(0)} % before the phase: waiting up to ${maxWaitMs / 1000} s for it to settle`);
  while (busy > thresholdPct && Date.now() < deadline) busy = await machineBusy(1000);
  return busy;
}

export type Groups = () => Record<string, number[]>;

export interface CpuUsage {
  /** per group, percent of one core */
  groups: Record<string, number>;
  /** whole machine busy, percent of one core (at most cores × 100) */
  machine: number;
  /** machine busy minus the groups: other processes sharing the box */
  other: number;
  iowait: number;
  seconds: number;
}

/**
 * Starts measuring; `stop()` gives the average CPU of each group since. `groups` is called at
 * both ends, so processes that appear during the phase (new backends) are counted from zero.
 */
export function startCpuMeter(groups: Groups): { stop(): CpuUsage } {
  const t0 = process.hrtime.bigint();
  const m0 = machineTicks();
  const before = new Map<number, number>();
  for (const pids of Object.values(groups())) for (const pid of pids) before.set(pid, processTicks(pid) ?? 0);
  return {
    stop(): CpuUsage {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const m1 = machineTicks();
      const pct = (ticks: number) => (ticks / CLK_TCK / seconds) * 100;
      const out: Record<string, number> = {};
      let ours = 0;
      for (const [name, pids] of Object.entries(groups())) {
        let ticks = 0;
        for (const pid of new Set(pids)) {
          const now = processTicks(pid);
          if (now !== null) ticks += now - (before.get(pid) ?? 0);
        }
        out[name] = pct(ticks);
        ours += ticks;
      }
      const machineBusy = m1.busy - m0.busy;
      return {
        groups: out,
        machine: pct(machineBusy),
        other: Math.max(0, pct(machineBusy - ours)),
        iowait: pct(m1.iowait - m0.iowait),
        seconds,
      };
    },
  };
}

/** Samples a process's VmRSS every `everyMs` and keeps the highest. */
export function startRssSampler(pid: () => number | null, everyMs = 200): { peak(): number; stop(): void } {
  let peak = 0;
  const timer = setInterval(() => {
    const p = pid();
    const rss = p ? processMemory(p, 'VmRSS') : null;
    if (rss && rss > peak) peak = rss;
  }, everyMs);
  timer.unref();
  return { peak: () => peak, stop: () => clearInterval(timer) };
}

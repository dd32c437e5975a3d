import { parseArgs } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import { waitForQuiet } from './sample.js';
import type { Cleanup } from './setup.js';

/**
 * What the geofence, alcohol and alerts benchmarks share: a runner that always cleans up (on
 * success, failure, a signal or the overall deadline), percentiles and the printed table.
 */

export interface Runner {
  cleanups: Cleanup[];
  log(m: string): void;
  /** waits (at most `quietWaitMs`) for the machine to be quiet before a measured phase */
  settle(): Promise<void>;
}

/** Pids of another engineer's `bench-ingest` run on this machine (from /proc), which would skew both benches. */
export function otherBenchPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('bench-ingest')) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * Runs `main` with a deadline of `timeoutMs`; prints what it returns; runs every registered
 * cleanup (last registered first, once) whatever happens; exits 0 on success, 1 on failure or
 * timeout, 130 on a signal.
 */
export function runBench(name: string, timeoutMs: number, quietWaitMs: number, main: (r: Runner) => Promise<string>): void {
  const cleanups: Cleanup[] = [];
  const log = (m: string) => console.error(`[${name} ${new Date().toISOString().slice(11, 19)}] ${m}`);
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const c of cleanups.reverse()) {
        try {
          await c.run();
        } catch (err) {
          console.error(`${name}: cleanup of ${c.what} failed: ${(err as Error).message}`);
        }
      }
    })();
    return cleaning;
  };
  let stopping = false;
  const finish = (code: number) => {
    stopping = true;
    void cleanup().then(() => process.exit(code));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`${name}: ${sig}, cleaning up`);
      finish(130);
    });
  }
  // note when bench-ingest runs at the same time: the figures of both are then disturbed
  const overlaps = new Set<string>();
  const watch = setInterval(() => {
    if (otherBenchPids().length) overlaps.add(new Date().toISOString().slice(11, 16));
  }, 5000);
  watch.unref();
  const deadline = setTimeout(() => {
    console.error(`${name}: aborted after the overall time limit of ${timeoutMs / 1000} s (--timeout); cleaning up`);
    finish(1);
  }, timeoutMs);
  const settle = async () => {
    const until = Date.now() + quietWaitMs;
    if (otherBenchPids().length) log(`bench-ingest is running: waiting up to ${quietWaitMs / 1000} s for it to finish`);
    while (otherBenchPids().length && Date.now() < until) await new Promise((r) => setTimeout(r, 5000));
    const busy = await waitForQuiet(Math.max(0, until - Date.now()), 40, log);
    if (busy > 40) log(`machine still ${busy.toFixed(0)} % busy; measuring anyway`);
  };
  main({ cleanups, log, settle })
    .then((report) => {
      clearTimeout(deadline);
      const note = overlaps.size ? `\nWARNING: bench-ingest ran at the same time (${[...overlaps].join(', ')} UTC): these figures are disturbed` : '';
      console.log(`\n${report}${note}\n`);
      finish(0);
    })
    .catch((err: Error) => {
      clearTimeout(deadline);
      if (stopping) return;
      console.error(`${name} failed: ${err.message}`);
      finish(1);
    });
}

/** The value at quantile `q` (0..1) of ascending `sorted`, nearest-rank; NaN when empty. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(values: number[]): Summary {
  const s = Float64Array.from(values).sort();
  return { n: s.length, p50: quantileSorted(s, 0.5), p99: quantileSorted(s, 0.99), max: s.length ? s[s.length - 1]! : NaN };
}

export const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-GB') : '-');
export const fixed = (n: number, dp = 1) => (Number.isFinite(n) ? n.toFixed(dp) : '-');
export const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'PASS' : 'MISS');

/** A plain text table; columns in `right` are right-aligned. */
export function table(header: string[], rows: string[][], right: Set<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Rows of measurement / value / unit / target / verdict, the layout of every bench table here. */
export class Results {
  rows: string[][] = [];
  add(what: string, value: string, unit = '', target = '', ok?: boolean): void {
    this.rows.push([what, value, unit, target, verdict(ok)]);
  }
  render(): string {
    return table(['measurement', 'value', 'unit', 'target', ''], this.rows, new Set([1]));
  }
}

/** Polls `check` every `everyMs` until it returns true or `ms` pass; returns whether it did. */
export async function pollUntil(check: () => Promise<boolean>, ms: number, everyMs = 250): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Integer flag parsing with a clear message. */
export function intFlag(name: string, v: string | undefined, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${v}`);
  return n;
}

/**
 * Cleanups of one part of a run (a scale, a pass): registered in the run's list too, so a
 * signal or timeout still undoes them; `close()` undoes them now (each at most once).
 */
export function scope(cleanups: Cleanup[], what: string): { cleanups: Cleanup[]; close(): Promise<void> } {
  const local: Cleanup[] = [];
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const c of local.reverse()) {
        try {
          await c.run();
        } catch (err) {
          console.error(`cleanup of ${c.what} (${what}) failed: ${(err as Error).message}`);
        }
      }
    })());
  cleanups.push({ what, run: close });
  return { cleanups: local, close };
}

/** Machine-wide softirq time (kernel network processing on loopback, among others), which no process is charged for. */
export function startSoftirqMeter(): { stop(): number } {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { softirq: f[6] ?? 0, t: process.hrtime.bigint() };
  };
  const a = read();
  return {
    /** percent of one core since the start */
    stop() {
      const b = read();
      const seconds = Number(b.t - a.t) / 1e9;
      return ((b.softirq - a.softirq) / 100 / seconds) * 100;
    },
  };
}

type FlagSpec = { type: 'string'; default: string } | { type: 'boolean'; default: boolean };
type FlagValues<O extends Record<string, FlagSpec>> = { [K in keyof O]: O[K]['type'] extends 'boolean' ? boolean : string };

/**
 * The command line of a benchmark: its own flags plus `--seed`, `--quiet-wait` (seconds to wait
 * for a quiet machine), `--timeout` (seconds for the whole run) and `--help`. `build` turns the
 * values into options and throws on a bad one: the message and the usage are printed, exit 2.
 */
export function benchOptions<O extends Record<string, FlagSpec>, R>(
  name: string,
  usage: string,
  flags: O,
  defaults: { seed: string; timeout: string },
  build: (f: FlagValues<O>) => R,
): R & { seed: number; quietMs: number; timeoutMs: number } {
  const { values } = parseArgs({
    options: {
      ...flags,
      seed: { type: 'string', default: defaults.seed },
      'quiet-wait': { type: 'string', default: '900' },
      timeout: { type: 'string', default: defaults.timeout },
      help: { type: 'boolean', default: false },
    },
  });
  const v = values as Record<string, string | boolean>;
  if (v.help) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return {
      ...build(v as FlagValues<O>),
      seed: intFlag('seed', v.seed as string),
      quietMs: intFlag('quiet-wait', v['quiet-wait'] as string) * 1000,
      timeoutMs: intFlag('timeout', v.timeout as string, 60) * 1000,
    };
  } catch (err) {
    console.error(`${name}: ${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
}

import { cpus } from 'node:os';
import type { LatencyResult, PhaseResult } from './phases.js';

/** The bench's printed tables: results against the ingest targets, then who used the CPU. */

export interface BenchResults {
  storage: string;
  knobs: Record<string, string | number>;
  load: Record<string, string | number>;
  a?: PhaseResult;
  b?: PhaseResult;
  c?: PhaseResult;
  d?: PhaseResult;
  latency?: LatencyResult;
  /** ingest process peak resident memory, bytes (VmHWM) */
  ingestPeakRss?: number;
  /** ingest VmRSS at start, then its sampled peak so far after each phase, bytes */
  ingestRssByPhase: Record<string, number>;
}

export const TARGETS = { cPerSec: 15_000, cOverB: 0.5, dOverA: 0.5, p99Ms: 250, rssBytes: 250 * 1024 * 1024 };

const int = (n: number) => Math.round(n).toLocaleString('en-GB');
const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'PASS' : 'MISS');

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatResults(r: BenchResults): string {
  const rows: string[][] = [];
  const add = (what: string, value: string, unit: string, target: string, ok?: boolean) => rows.push([what, value, unit, target, verdict(ok)]);
  if (r.a) add(r.a.label, int(r.a.perSec), 'rows/s', '', undefined);
  if (r.b) add(r.b.label, int(r.b.perSec), 'msgs/s', '', undefined);
  if (r.c) add(r.c.label, int(r.c.perSec), 'readings/s', `≥ ${int(TARGETS.cPerSec)}`, r.c.perSec >= TARGETS.cPerSec);
  if (r.c && r.b) add('    (c) / (b)', pct(r.c.perSec / r.b.perSec), '', `≥ ${pct(TARGETS.cOverB)}`, r.c.perSec / r.b.perSec >= TARGETS.cOverB);
  if (r.d) add(r.d.label, int(r.d.perSec), 'readings/s', '', undefined);
  if (r.d && r.a) add('    (d) / (a)', pct(r.d.perSec / r.a.perSec), '', `≥ ${pct(TARGETS.dOverA)}`, r.d.perSec / r.a.perSec >= TARGETS.dOverA);
  if (r.latency) {
    const l = r.latency;
    add(`publish→commit ${l.label.replace(/^latency /, '')}: p50 / p99`, `${l.p50Ms.toFixed(0)} / ${l.p99Ms.toFixed(0)}`, 'ms', `p99 < ${TARGETS.p99Ms}`, l.p99Ms < TARGETS.p99Ms);
  }
  if (r.ingestPeakRss !== undefined) {
    add('ingest process peak RSS (VmHWM)', (r.ingestPeakRss / 1024 / 1024).toFixed(0), 'MB', `< ${TARGETS.rssBytes / 1024 / 1024}`, r.ingestPeakRss < TARGETS.rssBytes);
  }
  const head = [
    `storage path: ${r.storage}`,
    `load: ${Object.entries(r.load).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `ingest knobs: ${Object.entries(r.knobs).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    '',
  ];
  return head.join('\n') + table(['measurement', 'value', 'unit', 'target', ''], rows, new Set([1]));
}

export function formatCpu(r: BenchResults): string {
  const phases: Array<[string, PhaseResult | undefined]> = [['(a)', r.a], ['(b)', r.b], ['(c)', r.c], ['(d)', r.d], ['latency', r.latency]];
  const names = ['mosquitto', 'ingest', 'publisher', 'postgres', 'redis', 'bench'];
  const rows = phases
    .filter((p): p is [string, PhaseResult] => p[1] !== undefined)
    .map(([name, p]) => [
      name,
      p.seconds.toFixed(2),
      ...names.map((n) => (p.cpu.groups[n] === undefined ? '-' : p.cpu.groups[n]!.toFixed(0))),
      p.cpu.other.toFixed(0),
      p.cpu.machine.toFixed(0),
      p.cpu.iowait.toFixed(0),
    ]);
  const header = ['phase', 'seconds', ...names, 'other', 'machine', 'iowait'];
  const notes = phases.filter(([, p]) => p?.note).map(([n, p]) => `${n}: ${p!.note}`);
  const rss = Object.entries(r.ingestRssByPhase);
  if (rss.length) notes.push(`ingest RSS: ${rss.map(([k, v]) => `${k} ${(v / 1024 / 1024).toFixed(0)} MB`).join(', then peak after ')}`);
  if (r.latency) notes.push(`latency: max ${r.latency.maxMs.toFixed(0)} ms, publisher fell behind its pace by at most ${r.latency.maxPublishLagMs.toFixed(0)} ms`);
  return [
    `CPU during each phase, % of one core (${cpus().length} cores: ${cpus().length * 100} % is all of it). postgres: this database's backends and the`,
    'cluster\'s background processes; redis: the shared stack server; other: everything else on the machine.',
    table(header, rows, new Set(header.map((_, i) => i).slice(1))),
    ...notes,
  ].join('\n');
}

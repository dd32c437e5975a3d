import type { ZoneRule } from './breach.js';
import { prepareZones, type PreparedZones } from './evaluate.js';

/**
 * Prepared zones kept between jobs, keyed by zone id and row version (PostgreSQL's `xmin`,
 * which changes with every UPDATE of the row) and the subject's time zone. A zone is parsed
 * (toShape) once per version instead of on every job; a subject's R-tree over its zones
 * (prepareZones) is rebuilt only when one of its rules changed. Bounded: past `maxZones` the
 * oldest entries go first. Per process; nothing in it outlives a change of the row.
 */
export class ZoneCache {
  private rules = new Map<string, ZoneRule>();
  private prepared = new Map<string, { rules: ZoneRule[]; zones: PreparedZones }>();
  hits = 0;
  misses = 0;

  constructor(readonly maxZones = 200_000) {}

  static key(id: string, version: string, timezone: string): string {
    return `${id}|${version}|${timezone}`;
  }

  get(key: string): ZoneRule | undefined {
    const r = this.rules.get(key);
    if (r) {
      this.hits++;
      // most recently used last
      this.rules.delete(key);
      this.rules.set(key, r);
    }
    return r;
  }

  set(key: string, rule: ZoneRule): void {
    this.misses++;
    this.rules.set(key, rule);
    while (this.rules.size > this.maxZones) this.rules.delete(this.rules.keys().next().value!);
  }

  /** prepareZones(rules) for a subject, reused while the subject's rules are the same objects. */
  prepare(subjectId: string, rules: ZoneRule[]): PreparedZones {
    const had = this.prepared.get(subjectId);
    if (had && had.rules.length === rules.length && had.rules.every((r, i) => r === rules[i])) return had.zones;
    const zones = prepareZones(rules);
    this.prepared.delete(subjectId);
    this.prepared.set(subjectId, { rules, zones });
    while (this.prepared.size > Math.max(1000, this.maxZones / 10)) this.prepared.delete(this.prepared.keys().next().value!);
    return zones;
  }

  clear(): void {
    this.rules.clear();
    this.prepared.clear();
  }
}

/** The process's cache (the evaluation jobs and the curfew job share it). */
export const zoneCache = new ZoneCache();

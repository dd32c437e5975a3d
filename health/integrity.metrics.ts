import { Gauge } from 'prom-client';
import type { Queryable } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { DEFAULT_INTEGRITY, MONITORED_STREAMS, type IntegrityParams } from './integrity.js';
import { fleetGaps } from './integrity.repo.js';

/** recomputed at most once a minute: a scrape every 15 s reads the database once a minute */
const CACHE_MS = 60_000;

/**
 * `tagwatch_monitoring_gap_subjects{stream}`: how many subjects with a device fitted now are in a
 * monitoring gap on each stream (gps, alcohol), and `tagwatch_monitoring_fitted_subjects`. Counts
 * only: no label carries a subject, device or person id (contract §6); who is in a gap is in
 * GET /v1/monitoring/gaps, role-checked and audited. Refreshed on scrape.
 */
export function registerIntegrityMetrics(metrics: Metrics, db: Queryable, params: IntegrityParams = DEFAULT_INTEGRITY, now: () => number = Date.now) {
  let cached: { at: number; value: { fitted: number; gaps: Record<string, number> } } | null = null;
  let loading: Promise<{ fitted: number; gaps: Record<string, number> }> | null = null;
  const load = async () => {
    if (cached && now() - cached.at < CACHE_MS) return cached.value;
    loading ??= (async () => {
      const t = now();
      const all = await fleetGaps(db, null, t, params);
      const gaps: Record<string, number> = { gps: 0, alcohol: 0 };
      for (const g of all.values()) {
        if (g.gps.gap) gaps.gps!++;
        if (g.alcohol.gap) gaps.alcohol!++;
      }
      const value = { fitted: all.size, gaps };
      cached = { at: t, value };
      return value;
    })().finally(() => {
      loading = null;
    });
    return loading;
  };
  for (const name of ['tagwatch_monitoring_gap_subjects', 'tagwatch_monitoring_fitted_subjects']) metrics.registry.removeSingleMetric(name);
  new Gauge({
    name: 'tagwatch_monitoring_gap_subjects',
    help: 'Subjects with a device fitted now whose readings of the stream fell under half of expected in the judged hour (alcohol: or whose last 24 h are heading below the 20 h monitored-day rule)',
    labelNames: ['stream'] as const,
    registers: [metrics.registry],
    async collect() {
      const { gaps } = await load();
      for (const s of MONITORED_STREAMS) this.set({ stream: s }, gaps[s] ?? 0);
    },
  });
  new Gauge({
    name: 'tagwatch_monitoring_fitted_subjects',
    help: 'Subjects with a device fitted now (the denominator of tagwatch_monitoring_gap_subjects)',
    registers: [metrics.registry],
    async collect() {
      this.set((await load()).fitted);
    },
  });
}

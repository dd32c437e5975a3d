import { Gauge } from 'prom-client';
import type { Queryable } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { fatigueStats, type FatigueRow } from './stats.repo.js';

/** The window of the alert-fatigue gauges: the last 30 days, recomputed at most once a minute. */
export const FATIGUE_WINDOW_MS = 30 * 86_400_000;
const CACHE_MS = 60_000;

/**
 * Alert-fatigue gauges in /metrics (which only admins and supervisors may read), per offender
 * manager and per subject (labels `scope` = manager|subject and `id`), over the last 30 days:
 * the same figures as GET /v1/alerts/stats. A figure without data (no acknowledgement yet, no
 * resolved alert) is left out rather than reported as 0.
 */
export function registerFatigueMetrics(metrics: Metrics, db: Queryable, now: () => number = Date.now) {
  type Row = { scope: string; id: string } & FatigueRow;
  let cached: { at: number; rows: Row[] } | null = null;
  let loading: Promise<Row[]> | null = null;
  const load = async (): Promise<Row[]> => {
    if (cached && now() - cached.at < CACHE_MS) return cached.rows;
    loading ??= (async () => {
      const t = now();
      const s = await fatigueStats(db, new Date(t - FATIGUE_WINDOW_MS), new Date(t));
      const rows: Row[] = [...s.managers.map((m) => ({ scope: 'manager', id: m.manager_id, ...m })), ...s.subjects.map((x) => ({ scope: 'subject', id: x.subject_id, ...x }))];
      cached = { at: t, rows };
      return rows;
    })().finally(() => {
      loading = null;
    });
    return loading;
  };
  const labelNames = ['scope', 'id'] as const;
  // registering again (another app on the same metrics) replaces the gauges
  for (const name of ['tagwatch_alert_fatigue_alerts_per_person_day', 'tagwatch_alert_fatigue_ack_seconds', 'tagwatch_alert_fatigue_false_alarm_share']) metrics.registry.removeSingleMetric(name);
  new Gauge({
    name: 'tagwatch_alert_fatigue_alerts_per_person_day',
    help: 'Alerts raised per person-day of monitoring (days a device was fitted), last 30 days',
    labelNames,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      for (const r of await load()) if (r.alerts_per_person_day !== null) this.set({ scope: r.scope, id: r.id }, r.alerts_per_person_day);
    },
  });
  new Gauge({
    name: 'tagwatch_alert_fatigue_ack_seconds',
    help: 'Time from raising to acknowledging an alert, p50 and p90, last 30 days',
    labelNames: [...labelNames, 'quantile'] as const,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      for (const r of await load()) {
        if (r.ack_p50_s !== null) this.set({ scope: r.scope, id: r.id, quantile: '0.5' }, r.ack_p50_s);
        if (r.ack_p90_s !== null) this.set({ scope: r.scope, id: r.id, quantile: '0.9' }, r.ack_p90_s);
      }
    },
  });
  new Gauge({
    name: 'tagwatch_alert_fatigue_false_alarm_share',
    help: 'Share of resolved alerts resolved as false alarms, last 30 days',
    labelNames,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      for (const r of await load()) if (r.resolved_false_share !== null) this.set({ scope: r.scope, id: r.id }, r.resolved_false_share);
    },
  });
}

import { Gauge } from 'prom-client';
import type { Queryable } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { fatigueStats, percentile, type FatigueRow } from './stats.repo.js';

/** The window of the alert-fatigue gauges: the last 30 days, recomputed at most once a minute. */
export const FATIGUE_WINDOW_MS = 30 * 86_400_000;
const CACHE_MS = 60_000;

interface Aggregates {
  fleet: FatigueRow;
  /** alerts per person-day of each manager's caseload, sorted ascending (no manager ids) */
  managerRates: number[];
}

/**
 * Alert-fatigue gauges in /metrics over the last 30 days, as aggregates only: the whole fleet,
 * and the spread of alerts per person-day across offender managers (quantiles, no names). No
 * label carries a subject or person id (contract §6): per-subject and per-manager figures are
 * in GET /v1/alerts/stats, which is role-checked and audited. A figure without data (no
 * acknowledgement yet, no resolved alert) is left out rather than reported as 0.
 */
export function registerFatigueMetrics(metrics: Metrics, db: Queryable, now: () => number = Date.now) {
  let cached: { at: number; value: Aggregates } | null = null;
  let loading: Promise<Aggregates> | null = null;
  const load = async (): Promise<Aggregates> => {
    if (cached && now() - cached.at < CACHE_MS) return cached.value;
    loading ??= (async () => {
      const t = now();
      const s = await fatigueStats(db, new Date(t - FATIGUE_WINDOW_MS), new Date(t));
      const managerRates = s.managers.flatMap((m) => (m.alerts_per_person_day === null ? [] : [m.alerts_per_person_day])).sort((a, b) => a - b);
      const value = { fleet: s.fleet, managerRates };
      cached = { at: t, value };
      return value;
    })().finally(() => {
      loading = null;
    });
    return loading;
  };
  const names = ['tagwatch_alert_fatigue_alerts_per_person_day', 'tagwatch_alert_fatigue_ack_seconds', 'tagwatch_alert_fatigue_false_alarm_share', 'tagwatch_alert_fatigue_manager_alerts_per_person_day'];
  // registering again (another app on the same metrics) replaces the gauges
  for (const name of names) metrics.registry.removeSingleMetric(name);
  new Gauge({
    name: 'tagwatch_alert_fatigue_alerts_per_person_day',
    help: 'Alerts raised per person-day of monitoring (days a device was fitted), whole fleet, last 30 days',
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const { fleet } = await load();
      if (fleet.alerts_per_person_day !== null) this.set(fleet.alerts_per_person_day);
    },
  });
  new Gauge({
    name: 'tagwatch_alert_fatigue_ack_seconds',
    help: 'Time from raising to acknowledging an alert, p50 and p90, whole fleet, last 30 days',
    labelNames: ['quantile'] as const,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const { fleet } = await load();
      if (fleet.ack_p50_s !== null) this.set({ quantile: '0.5' }, fleet.ack_p50_s);
      if (fleet.ack_p90_s !== null) this.set({ quantile: '0.9' }, fleet.ack_p90_s);
    },
  });
  new Gauge({
    name: 'tagwatch_alert_fatigue_false_alarm_share',
    help: 'Share of resolved alerts resolved as false alarms, whole fleet, last 30 days',
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const { fleet } = await load();
      if (fleet.resolved_false_share !== null) this.set(fleet.resolved_false_share);
    },
  });
  new Gauge({
    name: 'tagwatch_alert_fatigue_manager_alerts_per_person_day',
    help: 'Spread across offender managers of alerts per person-day of their caseload (quantiles 0.5, 0.9 and 1 = the busiest), last 30 days',
    labelNames: ['quantile'] as const,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const { managerRates } = await load();
      for (const q of [0.5, 0.9, 1]) {
        const v = percentile(managerRates, q, 3);
        if (v !== null) this.set({ quantile: String(q) }, v);
      }
    },
  });
}

import type { Queryable } from '../platform/db.js';

/**
 * Alert fatigue figures over [from, to): per subject and per offender manager, alerts per
 * person-day (days a device was fitted), time to acknowledge (p50/p90, seconds) and the share of
 * resolved alerts resolved as false alarms.
 */
export interface FatigueRow {
  alerts: number;
  person_days: number;
  alerts_per_person_day: number | null;
  ack_p50_s: number | null;
  ack_p90_s: number | null;
  resolved: number;
  resolved_false_share: number | null;
}

export async function fatigueStats(db: Queryable, from: Date, to: Date) {
  const r = await db.query<{ subject_id: string; managers: string[]; person_days: number; alerts: number; acks: number[]; resolved: number; false_alarms: number }>(
    `WITH pd AS (
       SELECT subject_id, sum(extract(epoch FROM least(coalesce(end_at, $2), $2) - greatest(start_at, $1)) / 86400.0)::float8 AS person_days
         FROM assignments WHERE start_at < $2 AND coalesce(end_at, 'infinity') > $1 GROUP BY subject_id
     ), al AS (
       SELECT subject_id, count(*)::int AS alerts,
              array_remove(array_agg(extract(epoch FROM acknowledged_at - raised_at)::float8), NULL) AS acks,
              count(*) FILTER (WHERE status = 'resolved')::int AS resolved,
              count(*) FILTER (WHERE status = 'resolved' AND false_alarm)::int AS false_alarms
         FROM alerts WHERE raised_at >= $1 AND raised_at < $2 GROUP BY subject_id
     )
     SELECT s.id AS subject_id, s.offender_manager_ids AS managers, coalesce(pd.person_days, 0) AS person_days,
            coalesce(al.alerts, 0) AS alerts, coalesce(al.acks, '{}') AS acks, coalesce(al.resolved, 0) AS resolved, coalesce(al.false_alarms, 0) AS false_alarms
       FROM subjects s LEFT JOIN pd ON pd.subject_id = s.id LEFT JOIN al ON al.subject_id = s.id
      WHERE pd.person_days > 0 OR al.alerts > 0
      ORDER BY s.id`,
    [from, to],
  );
  const byManager = new Map<string, { person_days: number; alerts: number; acks: number[]; resolved: number; false_alarms: number }>();
  for (const row of r.rows) {
    for (const m of row.managers) {
      const agg = byManager.get(m) ?? { person_days: 0, alerts: 0, acks: [], resolved: 0, false_alarms: 0 };
      agg.person_days += row.person_days;
      agg.alerts += row.alerts;
      agg.acks.push(...row.acks);
      agg.resolved += row.resolved;
      agg.false_alarms += row.false_alarms;
      byManager.set(m, agg);
    }
  }
  return {
    subjects: r.rows.map((row) => ({ subject_id: row.subject_id, ...figures(row) })),
    managers: [...byManager].map(([manager_id, agg]) => ({ manager_id, ...figures(agg) })),
  };
}

function figures(x: { person_days: number; alerts: number; acks: number[]; resolved: number; false_alarms: number }): FatigueRow {
  const acks = [...x.acks].sort((a, b) => a - b);
  return {
    alerts: x.alerts,
    person_days: Math.round(x.person_days * 100) / 100,
    alerts_per_person_day: x.person_days > 0 ? Math.round((x.alerts / x.person_days) * 1000) / 1000 : null,
    ack_p50_s: percentile(acks, 0.5),
    ack_p90_s: percentile(acks, 0.9),
    resolved: x.resolved,
    resolved_false_share: x.resolved ? Math.round((x.false_alarms / x.resolved) * 1000) / 1000 : null,
  };
}

/** Linear-interpolated percentile of sorted values (as PostgreSQL's percentile_cont). */
export function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return Math.round((sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo)) * 10) / 10;
}

import { DateTime } from 'luxon';
import type { FatigueRow } from '../alerts/stats.repo.js';
import { groupedBars, horizontalBars, lineChart } from './charts.js';
import type { CurveReading } from './supervisor.repo.js';

/** Words and charts for the supervisor's and the analyst's pages; pure. */

/** A duration for people: "3 min", "2 h 05 min", "3 days 4 h". */
export function duration(ms: number): string {
  const min = Math.max(0, Math.floor(ms / 60_000));
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${String(min % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

/** Seconds as minutes with one decimal ("4.5 min"), or the words for none. */
export const minutes = (s: number | null): string => (s === null ? 'None acknowledged' : `${(s / 60).toFixed(1)} min`);
export const percent = (share: number | null, none: string): string => (share === null ? none : `${(share * 100).toFixed(1)} %`);
export const perDay = (v: number | null): string => (v === null ? 'No person-days' : v.toFixed(3));

export interface FatigueLine { id: string; figures: FatigueRow; perDay: string; p50: string; p90: string; falseShare: string }

/** The per-manager table (by manager id) and its three charts. */
export function fatigueView(managers: Array<FatigueRow & { manager_id: string }>, fleet: FatigueRow) {
  const rows = [...managers].sort((a, b) => a.manager_id.localeCompare(b.manager_id));
  const line = (id: string, f: FatigueRow): FatigueLine => ({ id, figures: f, perDay: perDay(f.alerts_per_person_day), p50: minutes(f.ack_p50_s), p90: minutes(f.ack_p90_s), falseShare: percent(f.resolved_false_share, 'None resolved') });
  const lines = rows.map((m) => line(m.manager_id, m));
  return {
    lines,
    fleet: line('All managers', fleet),
    charts: {
      perDay: horizontalBars(lines.map((l) => ({ label: l.id, value: l.figures.alerts_per_person_day, text: l.perDay })), { xLabel: (v) => String(v) }),
      ack: horizontalBars(
        lines.map((l) => ({ label: l.id, value: l.figures.ack_p50_s === null ? null : l.figures.ack_p50_s / 60, marker: l.figures.ack_p90_s === null ? null : l.figures.ack_p90_s / 60, text: l.figures.ack_p50_s === null ? l.p50 : `${l.p50} (p90 ${l.p90})` })),
        { xLabel: (v) => `${v} min` },
      ),
      falseShare: horizontalBars(lines.map((l) => ({ label: l.id, value: l.figures.resolved_false_share === null ? null : l.figures.resolved_false_share * 100, text: l.falseShare })), { xLabel: (v) => `${v} %`, max: 100 }),
    },
  };
}

export interface CurveSummary {
  kind?: string;
  peak_tac?: number;
  positives?: number;
  baseline_ir?: number;
  baseline_temp_c?: number;
  start?: string;
  end?: string;
  params_version?: string;
}

const RULES: Record<string, string> = {
  drinking: 'Drinking event: a run of TAC readings at or above the threshold, with enough positive readings over at least the minimum time',
  obstruction: 'Obstruction: infrared outside the band around the wearer’s baseline for at least the minimum time',
  removal: 'Removal: an obstruction with the skin temperature well below the wearer’s baseline',
};

/** The review page's curves: TAC with the threshold and the event's start, peak and end; IR and temperature with the baseline and its bands. */
export function curveView(summary: CurveSummary, readings: CurveReading[], params: Record<string, number> | null, zone: string) {
  const start = summary.start ? Date.parse(summary.start) : readings[0]?.ts;
  const end = summary.end ? Date.parse(summary.end) : readings[readings.length - 1]?.ts;
  const inEvent = readings.filter((r) => start !== undefined && end !== undefined && r.ts >= start && r.ts <= end);
  const peak = inEvent.reduce<CurveReading | null>((best, r) => (best === null || r.tac > best.tac ? r : best), null);
  const marks = [
    ...(start !== undefined ? [{ t: start, label: 'Start' }] : []),
    ...(peak && summary.kind === 'drinking' ? [{ t: peak.ts, label: `Peak ${peak.tac.toFixed(3)}` }] : []),
    ...(end !== undefined ? [{ t: end, label: 'End' }] : []),
  ];
  const threshold = params?.tac_threshold;
  const tac = readings.length ? lineChart(readings.map((r) => ({ t: r.ts, v: r.tac })), { zone, marks, refs: threshold ? [{ value: threshold, label: `Threshold ${threshold} g/dL` }] : [], yLabel: (v) => v.toFixed(3), yMin: 0 }) : null;
  const irPoints = readings.filter((r) => r.ir !== null).map((r) => ({ t: r.ts, v: r.ir! }));
  const irRefs = summary.baseline_ir !== undefined ? [{ value: summary.baseline_ir, label: `Baseline ${summary.baseline_ir} V` }, ...(params ? [{ value: summary.baseline_ir * params.ir_low_ratio!, label: `Low ×${params.ir_low_ratio}` }, { value: summary.baseline_ir * params.ir_high_ratio!, label: `High ×${params.ir_high_ratio}` }] : [])] : [];
  const ir = irPoints.length ? lineChart(irPoints, { zone, marks, refs: irRefs, yLabel: (v) => v.toFixed(1), yMin: 0 }) : null;
  const tempRefs = summary.baseline_temp_c !== undefined ? [{ value: summary.baseline_temp_c, label: `Baseline ${summary.baseline_temp_c} °C` }, ...(params ? [{ value: summary.baseline_temp_c - params.removal_temp_drop_c!, label: `Removal −${params.removal_temp_drop_c} °C` }] : [])] : [];
  const temp = readings.length ? lineChart(readings.map((r) => ({ t: r.ts, v: r.temp_c })), { zone, marks, refs: tempRefs, yLabel: (v) => v.toFixed(0) }) : null;
  const at = (t: number | undefined) => (t === undefined ? '' : DateTime.fromMillis(t, { zone }).toFormat('d LLL yyyy, HH:mm ZZZZ'));
  return {
    rule: RULES[summary.kind ?? ''] ?? 'Not recorded',
    start: at(start),
    end: at(end),
    peak: peak ? `${peak.tac.toFixed(3)} g/dL at ${at(peak.ts)}` : null,
    charts: { tac, ir, temp },
    readings: readings.map((r) => ({ at: at(r.ts), tac: r.tac.toFixed(3), ir: r.ir === null ? 'Not reported' : r.ir.toFixed(2), temp: r.temp_c.toFixed(1), inEvent: start !== undefined && end !== undefined && r.ts >= start && r.ts <= end })),
  };
}

export interface CohortMonth { cohort: string; month: string; sober_days: number; monitored_days: number; rate: number | null; ci95: [number, number] | null; reviewed_sober_days: number; reviewed_monitored_days: number; reviewed_rate: number | null; reviewed_ci95: [number, number] | null; pending_events: number; subjects: number }

export const pct = (v: number | null | undefined): string => (v === null || v === undefined ? 'No monitored days' : `${(v * 100).toFixed(1)} %`);
export const ciText = (ci: [number, number] | null): string => (ci ? `${(ci[0] * 100).toFixed(1)} % to ${(ci[1] * 100).toFixed(1)} %` : 'None');

/** The analyst's chart: one group per month, one bar per cohort, error bars the 95 % interval. */
export function cohortChart(months: string[], cohorts: string[], figures: CohortMonth[], reviewed: boolean) {
  const get = (c: string, m: string) => figures.find((f) => f.cohort === c && f.month === m);
  return groupedBars(
    months.map((m) => ({
      label: DateTime.fromISO(`${m}-01`).toFormat('LLL yyyy'),
      bars: cohorts.map((c) => {
        const f = get(c, m);
        const rate = reviewed ? f?.reviewed_rate : f?.rate;
        const ci = reviewed ? f?.reviewed_ci95 : f?.ci95;
        return { value: rate ?? null, lo: ci?.[0] ?? null, hi: ci?.[1] ?? null };
      }),
    })),
    cohorts.length,
    { yMax: 1, yLabel: (v) => `${Math.round(v * 100)} %` },
  );
}

import type pg from 'pg';
import type { GeoDevicePlan } from '../common/fleet.js';
import type { FaultOptions } from './scenario.js';

/**
 * The suite's ground truth, from what the devices were told (the broker's PUBACKs, from the
 * fleet's bitmap) and the plan: every acknowledged reading stored exactly once (or durably
 * rejected, for the contract's reasons); a breach for every breaching device whose acknowledged
 * inside fixes span the grace period, raised once, from its first acknowledged inside fix; every
 * alert on the SSE stream and at the webhook at least once.
 */
export interface FaultRow {
  fault: string;
  label: string;
  /** the longest publish → stored and stored → alert delays, seconds */
  recoveryS: number;
  acked: number;
  stored: number;
  rejected: number;
  readingsLost: number;
  readingsDuplicated: number;
  breaches: number;
  alertsMissed: number;
  alertsDuplicated: number;
  alertsUnexpected: number;
  late: number;
  sseLost: number;
  webhookLost: number;
  /** deliveries seen more than once (same alert): deduplicable by event or delivery id */
  redelivered: number;
  note: string;
}

interface TruthInput {
  fault: string;
  label: string;
  o: FaultOptions;
  t0: number;
  faultAt: number;
  pool: pg.Pool;
  fleetPlan: GeoDevicePlan[];
  report: { published: number; acked?: number; ackedBitmap?: string };
  skew: number;
  stream: { raised: Map<string, number>; reconnects: () => number };
  hook: { raised: () => Map<string, number>; badSignatures: () => number };
  tails: () => string;
  /** what the parts logged as warnings or errors (summarised), for the notes */
  warnings: () => string;
}

const GRACE_MS = 60_000;

export async function groundTruth(x: TruthInput): Promise<FaultRow> {
  const { o, t0, pool, fleetPlan: plan, skew } = x;
  const n = plan.length;
  const bits = Buffer.from(x.report.ackedBitmap ?? '', 'base64');
  const acked = (m: number) => ((bits[m >> 3] ?? 0) & (1 << (m & 7))) !== 0;
  // device i's k-th fix: message m = k·n + i, device time round(t0 + m·interval/n) + skew
  const tsOf = (m: number) => Math.round(t0 + (m * o.intervalMs) / n) + skew;
  const stored = new Map<string, number>();
  const rows = await pool.query<{ device_id: string; ms: string; c: number }>(`SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint::text ms, count(*)::int c FROM readings GROUP BY 1, 2`);
  for (const r of rows.rows) stored.set(`${r.device_id}|${r.ms}`, r.c);
  const rejectedKeys = new Set<string>();
  const rej = await pool.query<{ device_id: string | null; reason: string; raw: Buffer | string }>(`SELECT device_id, reason, raw FROM rejections`);
  const reasons = new Map<string, number>();
  for (const r of rej.rows) {
    const code = r.reason.split(':')[0]!; // the reason code; its text names the reading
    reasons.set(code, (reasons.get(code) ?? 0) + 1);
    try {
      const ts = (JSON.parse(Buffer.isBuffer(r.raw) ? r.raw.toString('utf8') : r.raw) as { ts?: string }).ts;
      if (r.device_id && ts) rejectedKeys.add(`${r.device_id}|${Date.parse(ts)}`);
    } catch {
      /* not JSON: not one of ours */
    }
  }
  let ackedN = 0;
  let lost = 0;
  for (let m = 0; m < x.report.published; m++) {
    if (!acked(m)) continue;
    ackedN++;
    const key = `${plan[m % n]!.id}|${tsOf(m)}`;
    if (!stored.has(key) && !rejectedKeys.has(key)) lost++;
  }
  const duplicated = [...stored.values()].reduce((s, c) => s + Math.max(0, c - 1), 0);

  // breaches the devices were acknowledged for (stored as readings: a rejected fix proves nothing)
  const expected = new Map<string, number>();
  plan.forEach((d, i) => {
    if (!d.breach) return;
    const inside: number[] = [];
    for (let k = d.breach.fromK; k < d.breach.toK; k++) {
      const m = k * n + i;
      if (m < x.report.published && acked(m) && stored.has(`${d.id}|${tsOf(m)}`)) inside.push(tsOf(m));
    }
    if (inside.length && inside[inside.length - 1]! - inside[0]! >= GRACE_MS) expected.set(`s${d.id}`, inside[0]!);
  });
  const alerts = await pool.query<{ id: string; subject_id: string; started: string; late: boolean }>(
    `SELECT id, subject_id, (extract(epoch FROM started_at) * 1000)::bigint::text started, late FROM alerts WHERE type = 'exclusion_breach'`,
  );
  const others = await pool.query<{ type: string; n: number }>(`SELECT type, count(*)::int n FROM alerts WHERE type <> 'exclusion_breach' GROUP BY 1`);
  const seen = new Map<string, number>();
  let unexpected = 0;
  for (const a of alerts.rows) {
    seen.set(a.subject_id, (seen.get(a.subject_id) ?? 0) + 1);
    const want = expected.get(a.subject_id);
    if (want === undefined || Number(a.started) !== want) unexpected++;
  }
  const missed = [...expected.keys()].filter((s) => !seen.has(s)).length;
  const alertsDup = [...seen.values()].reduce((s, c) => s + Math.max(0, c - 1), 0);
  const all = (await pool.query<{ id: string }>(`SELECT id FROM alerts`)).rows.map((r) => r.id);
  const hooked = x.hook.raised();
  const sseLost = all.filter((id) => !x.stream.raised.has(id)).length;
  const webhookLost = all.filter((id) => !hooked.has(id)).length;
  const redelivered = [...x.stream.raised.values(), ...hooked.values()].filter((c) => c > 1).length;
  const delays = await pool.query<{ ingest: number | null; worker: number | null }>(
    `SELECT (SELECT max(extract(epoch FROM received_at - (data->>'sent_at')::timestamptz)) FROM readings) ingest,
            (SELECT max(extract(epoch FROM a.raised_at - r.received_at)) FROM alerts a
               JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps' AND r.ts = (a.evidence->-1->>'ts')::timestamptz) worker`,
  );
  const d = delays.rows[0]!;
  const notes = [
    reasons.size ? `rejected: ${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')}` : '',
    others.rowCount ? `other alerts: ${others.rows.map((r) => `${r.type} ${r.n}`).join(', ')}` : '',
    x.stream.reconnects() ? `SSE reconnects ${x.stream.reconnects()}` : '',
    x.hook.badSignatures() ? `bad signatures ${x.hook.badSignatures()}` : '',
    x.warnings() ? `logged ${x.warnings()}` : '',
  ].filter(Boolean);
  return {
    fault: x.fault,
    label: x.label,
    recoveryS: Math.max(Number(d.ingest ?? 0), Number(d.worker ?? 0)),
    acked: ackedN,
    stored: rows.rows.length,
    rejected: rej.rowCount ?? 0,
    readingsLost: lost,
    readingsDuplicated: duplicated,
    breaches: expected.size,
    alertsMissed: missed,
    alertsDuplicated: alertsDup,
    alertsUnexpected: unexpected,
    late: alerts.rows.filter((a) => a.late).length,
    sseLost,
    webhookLost,
    redelivered,
    note: notes.join('; '),
  };
}

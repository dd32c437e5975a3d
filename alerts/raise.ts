import type { TxClient } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { endCondition, overlappingAlerts, raiseAlert, type AlertRow } from './alerts.repo.js';
import { isLate, type AlertType } from './rules.js';

/**
 * What a rule found (geofence, alcohol, health, crime review), as one shape: the alert it proves
 * and, when known, the end of its condition. Times are epoch milliseconds, device time.
 */
export interface AlertFinding {
  type: AlertType;
  subjectId: string;
  deviceId: string | null;
  zoneId: string | null;
  /** the first evidence */
  startedAt: number;
  /** the reading that proved it (its receipt decides `late`); null: found by the clock, never late */
  provenAt: number | null;
  /** the condition is over at this time (a finished event); null or absent: still under way */
  endedAt?: number | null;
  /** the rule's own word on lateness (a gap in receipt found afterwards is late by nature); absent: decided by isLate */
  late?: boolean;
  evidence: unknown[];
}

export interface FindingContext {
  /** ms: receipt time of the reading at a device time */
  receivedAt?: (ts: number) => number | undefined;
  /** ms: the device's evaluation watermark before these readings (null: none yet) */
  watermark?: number | null;
  /**
   * A re-found condition: an alert of the same (subject, type, zone) overlapping
   * [startedAt, overlapTo] is the same condition, found again from a later start (a replay, a
   * re-evaluation of history); nothing is raised and a finished condition's end is recorded.
   */
  sameIfOverlapping?: { overlapTo: number };
  metrics?: Pick<Metrics, 'alertsRaised' | 'alertLatency'>;
}

/**
 * Applies one finding inside the caller's transaction: raises its alert once (late when the
 * proving reading arrived late), records its end, counts it. Returns the alert when it is new.
 */
export async function applyAlertFinding(tx: TxClient, f: AlertFinding, ctx: FindingContext = {}): Promise<AlertRow | null> {
  const ended = f.endedAt ?? null;
  if (ctx.sameIfOverlapping && (await overlappingAlerts(tx, f.subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(ctx.sameIfOverlapping.overlapTo))) > 0) {
    if (ended !== null) await endCondition(tx, f.subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(ended));
    return null;
  }
  const received = f.provenAt === null ? undefined : ctx.receivedAt?.(f.provenAt);
  const late = f.late ?? (f.provenAt !== null && isLate(f.provenAt, received, ctx.watermark ?? null));
  const r = await raiseAlert(tx, { type: f.type, subjectId: f.subjectId, deviceId: f.deviceId, zoneId: f.zoneId, startedAt: new Date(f.startedAt), late, evidence: f.evidence });
  if (r.outcome !== 'raised') return null;
  if (ended !== null) await endCondition(tx, f.subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(ended));
  ctx.metrics?.alertsRaised.inc({ type: r.alert.type });
  // publish-to-alert latency: only for alerts proved by a reading that arrived on time
  if (ctx.metrics && received !== undefined && !late) ctx.metrics.alertLatency.observe((r.alert.raised_at.getTime() - received) / 1000);
  return r.alert;
}

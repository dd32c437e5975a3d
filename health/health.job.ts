import { lockKeys, withTransaction, type Pool } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import type { Logger } from '../platform/logger.js';
import type { Stream } from '../signals/streams.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import { applyAlertFinding } from '../alerts/raise.js';
import { autoResolve, escalateOverdue } from '../alerts/lifecycle.repo.js';
import { absence, applyStatus, NO_SIGNAL_MS, type HealthState } from './health.js';
import { endConditionsOfType, fittedNow, fittedSubjects, loadHealth, newReceipts, openAbsences, statusReadings, writeHealth, type HealthRow, type HealthWrite, type Receipts } from './health.repo.js';

export interface HealthDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
}


export interface DeviceHealthInput {
  deviceId: string;
  /** the earliest device time (ms) of the new readings of each stream, as signalled */
  dirty: Partial<Record<Stream, number>>;
}

/**
 * The evaluation worker's health step for a batch of distinct devices with new readings, in one
 * transaction: status rules, the end of absence alerts (data is back), and a gap in receipt of
 * 15 minutes or more found from the receipt times themselves (raised late and resolved at once),
 * so a burst of stored readings never hides a gap that the clock check did not see. The health rows,
 * the new receipts and the fitted subjects are read with one query each, the rules run device by
 * device (in id order), and only the health rows that changed are written, in one statement.
 * The open absence alerts of the subjects are read once, so data coming back resolves only
 * what is open.
 */
export async function evaluateDevicesHealth(deps: HealthDeps, batch: readonly DeviceHealthInput[], now: number): Promise<Map<string, AlertRow[]>> {
  const items = [...batch].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  const out = new Map<string, AlertRow[]>();
  if (items.length === 0) return out;
  const ids = items.map((i) => i.deviceId);
  return withTransaction(deps.pool, async (client) => {
    await lockKeys(client, 'health:', ids);
    const health = await loadHealth(client, ids);
    const since = items.map((i) => Math.min(...Object.values(i.dirty), now - 3600_000));
    const fresh = await newReceipts(client, ids, since.map((t) => new Date(t)), ids.map((d) => health.get(d)?.last_received_at ?? null));
    const freshOf = new Map<string, Receipts[]>();
    for (const r of fresh) freshOf.set(r.device_id, [...(freshOf.get(r.device_id) ?? []), r]);
    const subjectOf = await fittedSubjects(client, ids, new Date(now));
    const absent = await openAbsences(client, [...new Set(subjectOf.values())]);
    const resolve = async (subjectId: string, type: 'no_signal' | 'no_gps_fix', reason: string, at: Date) => {
      if (!absent.delete(`${subjectId}|${type}`)) return;
      await autoResolve(client, subjectId, type, reason, at);
    };
    const writes: HealthWrite[] = [];
    for (const { deviceId, dirty } of items) {
      const raised: AlertRow[] = [];
      out.set(deviceId, raised);
      const h = health.get(deviceId);
      const newRows = freshOf.get(deviceId) ?? [];
      const subjectId = subjectOf.get(deviceId) ?? null;
      const byStream = new Map(newRows.map((r) => [r.stream, r]));
      const firstRec = Math.min(...newRows.map((r) => r.first_rec.getTime()));
      let state: HealthState = { strap_open: h?.strap_open ?? false, case_open: h?.case_open ?? false, battery_low: h?.battery_low ?? false, battery_pct: h?.battery_pct ?? null };
      if (subjectId && newRows.length) {
        if (h?.last_received_at && firstRec - h.last_received_at.getTime() >= NO_SIGNAL_MS) {
          // found from receipt times afterwards: late by nature
          const a = await applyAlertFinding(client, {
            type: 'no_signal',
            subjectId,
            deviceId,
            zoneId: null,
            startedAt: (h.last_ts ?? h.last_received_at).getTime(),
            provenAt: null,
            late: true,
            evidence: [{ last_received_at: h.last_received_at.toISOString(), next_received_at: new Date(firstRec).toISOString() }],
          });
          if (a) raised.push(a);
          absent.add(`${subjectId}|no_signal`);
        }
        await resolve(subjectId, 'no_signal', `data received again at ${new Date(firstRec).toISOString()}`, new Date(firstRec));
        if (byStream.has('gps')) await resolve(subjectId, 'no_gps_fix', 'fixes received again', byStream.get('gps')!.first_rec);
      }
      if (dirty.status !== undefined) {
        const rows = await statusReadings(client, deviceId, new Date(dirty.status));
        const receivedAt = new Map(rows.map((r) => [r.ts.getTime(), r.received_at.getTime()]));
        const applied = applyStatus(state, rows.map((r) => ({ ...r.data, ts: r.ts.getTime() })));
        state = applied.state;
        for (const c of applied.changes) {
          if (!subjectId) break;
          if (c.kind === 'raise') {
            const a = await applyAlertFinding(
              client,
              { type: c.type, subjectId, deviceId, zoneId: null, startedAt: c.ts, provenAt: c.ts, evidence: [{ ...c.evidence, ts: new Date(c.ts).toISOString() }] },
              { receivedAt: (ts) => receivedAt.get(ts) },
            );
            if (a) raised.push(a);
          } else if (c.kind === 'end') {
            await endConditionsOfType(client, subjectId, c.type, new Date(c.ts));
          } else await autoResolve(client, subjectId, c.type, c.reason, new Date(c.ts));
        }
      }
      const lastRec = Math.max(h?.last_received_at?.getTime() ?? 0, ...newRows.map((r) => r.last_rec.getTime()));
      const lastTs = Math.max(h?.last_ts?.getTime() ?? 0, ...newRows.map((r) => r.last_ts.getTime()));
      const row = [
        deviceId,
        lastRec ? new Date(lastRec) : null,
        lastTs ? new Date(lastTs) : null,
        byStream.get('gps')?.last_rec ?? null,
        byStream.get('status')?.last_rec ?? null,
        state.strap_open,
        state.case_open,
        state.battery_low,
        state.battery_pct,
      ] as const;
      if (changed(h, row)) writes.push([...row] as HealthWrite);
      for (const a of raised) deps.metrics.alertsRaised.inc({ type: a.type });
    }
    await writeHealth(client, writes);
    return out;
  });
}

/** Whether writing `row` would change the stored health (an absent row reads as nulls and false). */
function changed(h: HealthRow | undefined, row: Readonly<HealthWrite>): boolean {
  const t = (d: Date | null | undefined) => d?.getTime() ?? null;
  const [, lastRec, lastTs, gpsRec, statusRec, strap, kase, low, pct] = row;
  return (
    t(lastRec) !== t(h?.last_received_at) ||
    t(lastTs) !== t(h?.last_ts) ||
    (gpsRec !== null && t(gpsRec) !== t(h?.last_gps_received_at)) ||
    (statusRec !== null && t(statusRec) !== t(h?.last_status_received_at)) ||
    strap !== (h?.strap_open ?? false) ||
    kase !== (h?.case_open ?? false) ||
    low !== (h?.battery_low ?? false) ||
    pct !== (h?.battery_pct ?? null)
  );
}

/**
 * The clock's part (every minute): `no_signal` and `no_gps_fix` for every device fitted now,
 * against the server clock, and escalation of high alerts left unacknowledged. Each device's
 * alerts are raised in a transaction of their own: a device that fails (listed in `failed`, and
 * tried again on the next tick) neither leaves half an alert nor holds back the others.
 */
export async function tickHealth(deps: HealthDeps, now: number, escalateAfterMs: number): Promise<{ raised: AlertRow[]; escalated: string[]; failed: string[] }> {
  const devices = await fittedNow(deps.pool, new Date(now));
  const raised: AlertRow[] = [];
  const failed: string[] = [];
  for (const d of devices) {
    const fitted = d.start_at.getTime();
    const state = absence(
      {
        lastReceived: Math.max(fitted, d.last_received_at?.getTime() ?? 0),
        lastGpsReceived: Math.max(fitted, d.last_gps_received_at?.getTime() ?? 0),
        lastStatusReceived: d.last_status_received_at?.getTime() ?? null,
        gpsCapable: d.kind === 'gps' || d.kind === 'combined',
      },
      now,
    );
    const due = (['no_signal', 'no_gps_fix'] as const).filter((type) => state[type]);
    if (due.length === 0) continue;
    try {
      const mine = await withTransaction(deps.pool, async (tx) => {
        const out: AlertRow[] = [];
        for (const type of due) {
          const startedAt = type === 'no_signal' ? (d.last_ts ?? d.start_at) : (d.last_gps_received_at ?? d.start_at);
          const evidence = [{ last_received_at: d.last_received_at?.toISOString() ?? null, checked_at: new Date(now).toISOString() }];
          // found by the clock: never late
          const a = await applyAlertFinding(tx, { type, subjectId: d.subject_id, deviceId: d.device_id, zoneId: null, startedAt: startedAt.getTime(), provenAt: null, evidence });
          if (a) out.push(a);
        }
        return out;
      });
      for (const a of mine) deps.metrics.alertsRaised.inc({ type: a.type });
      raised.push(...mine);
    } catch (err) {
      failed.push(d.device_id);
      deps.logger.warn({ err: (err as Error).message, device: d.device_id }, 'health tick failed for a device; retried on the next tick');
    }
  }
  const escalated = await escalateOverdue(deps.pool, escalateAfterMs, new Date(now));
  return { raised, escalated, failed };
}

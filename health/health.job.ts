import type { PoolClient } from 'pg';
import { withTransaction, type Pool } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import type { Logger } from '../platform/logger.js';
import type { Stream } from '../ingest/telemetry.js';
import { raiseAlert, type AlertRow } from '../alerts/alerts.repo.js';
import { autoResolve, escalateOverdue } from '../alerts/lifecycle.repo.js';
import { absence, applyStatus, NO_SIGNAL_MS, type HealthState, type StatusIn } from './health.js';
import { isLate, type AlertType } from '../alerts/rules.js';

export interface HealthDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
}

interface HealthRow extends HealthState {
  last_received_at: Date | null;
  last_ts: Date | null;
  last_gps_received_at: Date | null;
  last_status_received_at: Date | null;
}

export interface DeviceHealthInput {
  deviceId: string;
  /** the earliest device time (ms) of the new readings of each stream, as signalled */
  dirty: Partial<Record<Stream, number>>;
}

/**
 * The evaluation worker's health step for one device with new readings: status rules, the end
 * of absence alerts (data is back), and a gap in receipt of 15 minutes or more found from the
 * receipt times themselves (raised late and resolved at once), so a burst of stored readings
 * never hides a gap that the clock check did not see.
 */
export async function evaluateDeviceHealth(deps: HealthDeps, deviceId: string, dirty: Partial<Record<Stream, number>>, now: number): Promise<AlertRow[]> {
  return (await evaluateDevicesHealth(deps, [{ deviceId, dirty }], now)).get(deviceId) ?? [];
}

/**
 * `evaluateDeviceHealth` for a batch of distinct devices in one transaction: the health rows,
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
    await client.query(`SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext('health:' || d) AS h FROM unnest($1::text[]) AS d ORDER BY h) AS x`, [ids]);
    const rows = await client.query<HealthRow & { device_id: string }>(`SELECT * FROM device_health WHERE device_id = ANY($1::text[])`, [ids]);
    const health = new Map(rows.rows.map((r) => [r.device_id, r]));
    const since = items.map((i) => Math.min(...Object.values(i.dirty), now - 3600_000));
    const fresh = await client.query<{ device_id: string; stream: Stream; first_rec: Date; last_rec: Date; last_ts: Date }>(
      `SELECT q.device_id, f.stream, f.first_rec, f.last_rec, f.last_ts
         FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS q(device_id, since, after)
         CROSS JOIN LATERAL (
           SELECT stream, min(received_at) first_rec, max(received_at) last_rec, max(ts) last_ts FROM readings
            WHERE device_id = q.device_id AND stream = ANY('{gps,alcohol,status}'::text[]) AND ts >= q.since
              AND received_at > coalesce(q.after, '-infinity') GROUP BY stream) AS f`,
      [ids, since.map((t) => new Date(t)), ids.map((d) => health.get(d)?.last_received_at ?? null)],
    );
    const freshOf = new Map<string, typeof fresh.rows>();
    for (const r of fresh.rows) freshOf.set(r.device_id, [...(freshOf.get(r.device_id) ?? []), r]);
    const fitted = await client.query<{ device_id: string; subject_id: string }>(
      `SELECT device_id, subject_id FROM assignments WHERE device_id = ANY($1::text[]) AND start_at <= $2 AND coalesce(end_at, 'infinity') > $2`,
      [ids, new Date(now)],
    );
    const subjectOf = new Map(fitted.rows.map((r) => [r.device_id, r.subject_id]));
    const open = await client.query<{ subject_id: string; type: AlertType }>(
      `SELECT DISTINCT subject_id, type FROM alerts
        WHERE subject_id = ANY($1::text[]) AND type IN ('no_signal', 'no_gps_fix') AND zone_id IS NULL AND status IN ('open', 'acknowledged')`,
      [[...new Set(subjectOf.values())]],
    );
    const absent = new Set(open.rows.map((r) => `${r.subject_id}|${r.type}`));
    const resolve = async (subjectId: string, type: 'no_signal' | 'no_gps_fix', reason: string, at: Date) => {
      if (!absent.delete(`${subjectId}|${type}`)) return;
      await autoResolve(client, subjectId, type, reason, at);
    };
    const writes: unknown[][] = [];
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
          const a = await raise(client, subjectId, deviceId, 'no_signal', h.last_ts ?? h.last_received_at, true, [
            { last_received_at: h.last_received_at.toISOString(), next_received_at: new Date(firstRec).toISOString() },
          ]);
          if (a) raised.push(a);
          absent.add(`${subjectId}|no_signal`);
        }
        await resolve(subjectId, 'no_signal', `data received again at ${new Date(firstRec).toISOString()}`, new Date(firstRec));
        if (byStream.has('gps')) await resolve(subjectId, 'no_gps_fix', 'fixes received again', byStream.get('gps')!.first_rec);
      }
      if (dirty.status !== undefined) {
        const rows = await client.query<{ ts: Date; data: StatusIn & { ts: string }; received_at: Date }>(
          `SELECT ts, data, received_at FROM readings WHERE device_id = $1 AND stream = 'status' AND ts >= $2 ORDER BY ts`,
          [deviceId, new Date(dirty.status)],
        );
        const receivedAt = new Map(rows.rows.map((r) => [r.ts.getTime(), r.received_at.getTime()]));
        const applied = applyStatus(state, rows.rows.map((r) => ({ ...r.data, ts: r.ts.getTime() })));
        state = applied.state;
        for (const c of applied.changes) {
          if (!subjectId) break;
          if (c.kind === 'raise') {
            const late = isLate(c.ts, receivedAt.get(c.ts), null);
            const a = await raise(client, subjectId, deviceId, c.type, new Date(c.ts), late, [{ ...c.evidence, ts: new Date(c.ts).toISOString() }]);
            if (a) raised.push(a);
          } else if (c.kind === 'end') {
            await client.query(
              `UPDATE alerts SET ended_at = $3, updated_at = now() WHERE subject_id = $1 AND type = $2 AND ended_at IS NULL`,
              [subjectId, c.type, new Date(c.ts)],
            );
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
      if (changed(h, row)) writes.push([...row]);
      for (const a of raised) deps.metrics.alertsRaised.inc({ type: a.type });
    }
    if (writes.length) {
      const col = (i: number) => writes.map((w) => w[i]);
      await client.query(
        `INSERT INTO device_health (device_id, last_received_at, last_ts, last_gps_received_at, last_status_received_at, strap_open, case_open, battery_low, battery_pct)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::boolean[], $7::boolean[], $8::boolean[], $9::float8[])
         ON CONFLICT (device_id) DO UPDATE SET last_received_at = excluded.last_received_at, last_ts = excluded.last_ts,
           last_gps_received_at = coalesce(excluded.last_gps_received_at, device_health.last_gps_received_at),
           last_status_received_at = coalesce(excluded.last_status_received_at, device_health.last_status_received_at),
           strap_open = excluded.strap_open, case_open = excluded.case_open, battery_low = excluded.battery_low,
           battery_pct = excluded.battery_pct, updated_at = now()`,
        [0, 1, 2, 3, 4, 5, 6, 7, 8].map(col),
      );
    }
    return out;
  });
}

/** Whether writing `row` would change the stored health (an absent row reads as nulls and false). */
function changed(h: HealthRow | undefined, row: readonly [string, Date | null, Date | null, Date | null, Date | null, boolean, boolean, boolean, number | null]): boolean {
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

async function raise(client: PoolClient, subjectId: string, deviceId: string, type: AlertType, startedAt: Date, late: boolean, evidence: unknown[]) {
  const r = await raiseAlert(client, { type, subjectId, deviceId, zoneId: null, startedAt, late, evidence });
  return r.outcome === 'raised' ? r.alert : null;
}

/**
 * The clock's part (every minute): `no_signal` and `no_gps_fix` for every device fitted now,
 * against the server clock, and escalation of high alerts left unacknowledged.
 */
export async function tickHealth(deps: HealthDeps, now: number, escalateAfterMs: number): Promise<{ raised: AlertRow[]; escalated: string[] }> {
  const devices = await deps.pool.query<{
    device_id: string;
    subject_id: string;
    kind: string;
    start_at: Date;
    last_received_at: Date | null;
    last_ts: Date | null;
    last_gps_received_at: Date | null;
    last_status_received_at: Date | null;
  }>(
    `SELECT a.device_id, a.subject_id, d.kind, a.start_at, h.last_received_at, h.last_ts, h.last_gps_received_at, h.last_status_received_at
       FROM assignments a JOIN devices d ON d.id = a.device_id LEFT JOIN device_health h ON h.device_id = a.device_id
      WHERE a.start_at <= $1 AND coalesce(a.end_at, 'infinity') > $1 AND d.active`,
    [new Date(now)],
  );
  const raised: AlertRow[] = [];
  for (const d of devices.rows) {
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
    for (const type of ['no_signal', 'no_gps_fix'] as const) {
      if (!state[type]) continue;
      const startedAt = type === 'no_signal' ? (d.last_ts ?? d.start_at) : (d.last_gps_received_at ?? d.start_at);
      const r = await raiseAlert(deps.pool, { type, subjectId: d.subject_id, deviceId: d.device_id, zoneId: null, startedAt, late: false, evidence: [{ last_received_at: d.last_received_at?.toISOString() ?? null, checked_at: new Date(now).toISOString() }] });
      if (r.outcome === 'raised') {
        raised.push(r.alert);
        deps.metrics.alertsRaised.inc({ type });
      }
    }
  }
  const escalated = await escalateOverdue(deps.pool, escalateAfterMs, new Date(now));
  return { raised, escalated };
}


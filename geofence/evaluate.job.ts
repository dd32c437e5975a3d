import { isLate } from '../alerts/rules.js';
import type { PoolClient } from 'pg';
import { withTransaction, type Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import type { Fix, ZoneRule } from './breach.js';
import { evaluateFixes, prepareZones, type ZoneStates } from './evaluate.js';
import { loadRulesOf } from './zones.repo.js';
import { advanceGeofenceWatermarks, applyFinding, loadStatesOf, lockKeys, writeStates, type StateWrite } from './states.repo.js';

/**
 * The evaluation worker's geofence step for a batch of devices, in one transaction: loads the
 * watermarks, every device's unevaluated fixes, the zones and the breach states of the subjects
 * fitted at those fixes' times with one set-based query each, runs the pure core device by
 * device (in device-id order, each device's fixes in device-time order), and writes the states
 * that changed, the watermarks and any alerts. The result is what evaluating the devices one
 * after the other, each in its own transaction, would give.
 *
 * Late fixes (at or before the watermark) are replayed: from a clear state `REPLAY_MS` before
 * the earliest late fix up to the newest fix. A breach found again that overlaps an alert
 * already raised for the same (subject, type, zone) is the same breach and is not raised twice;
 * a new one proven by a fix at or before the watermark is raised with `late: true`.
 */

export const REPLAY_MS = 6 * 3600_000;
const CHUNK = 20_000;

export interface GeofenceDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
}

interface FixRow extends Fix {
  received_at: number;
  subject_id: string;
}

export interface GeofenceResult {
  fixes: number;
  raised: AlertRow[];
  replayed: boolean;
}

export interface DeviceToEvaluate {
  deviceId: string;
  /** the earliest device time (ms) of the new fixes, when the signal carried it */
  dirtyFrom: number | null;
}

export interface GeofenceBatchResult {
  devices: Map<string, GeofenceResult>;
  /** devices that could not be evaluated in this batch (nothing of theirs was written) */
  failed: Map<string, Error>;
}

/** One device alone: the batch of one. Throws what the device's evaluation threw. */
export async function evaluateDeviceGeofence(deps: GeofenceDeps, deviceId: string, dirtyFrom: number | null): Promise<GeofenceResult> {
  const r = await evaluateDevicesGeofence(deps, [{ deviceId, dirtyFrom }]);
  const err = r.failed.get(deviceId);
  if (err) throw err;
  return r.devices.get(deviceId)!;
}

/** Evaluates a batch of distinct devices in one transaction (see the module comment). */
export async function evaluateDevicesGeofence(deps: GeofenceDeps, batch: readonly DeviceToEvaluate[]): Promise<GeofenceBatchResult> {
  const items = [...batch].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  const out: GeofenceBatchResult = { devices: new Map(), failed: new Map() };
  if (items.length === 0) return out;
  return withTransaction(deps.pool, async (client) => {
    const ids = items.map((i) => i.deviceId);
    await lockKeys(client, 'geofence-device:', ids);
    const wm = await client.query<{ device_id: string; watermark: Date }>(`SELECT device_id, watermark FROM geofence_progress WHERE device_id = ANY($1::text[])`, [ids]);
    const watermarks = new Map(wm.rows.map((r) => [r.device_id, r.watermark.getTime()]));
    const plans = items.map(({ deviceId, dirtyFrom }) => {
      const watermark = watermarks.get(deviceId) ?? null;
      const replay = watermark !== null && dirtyFrom !== null && dirtyFrom <= watermark;
      const from = replay ? dirtyFrom! - REPLAY_MS : (watermark ?? (dirtyFrom ?? 0) - 1);
      return { deviceId, watermark, replay, from };
    });
    const fixesOf = await loadFixes(client, plans);
    const subjects = [...new Set([...fixesOf.values()].flatMap((fs) => fs.map((f) => f.subject_id)))].sort();
    await lockKeys(client, 'zone-state:', subjects);
    const rulesOf = await loadRulesOf(client, subjects);
    const stored = await loadStatesOf(client, subjects.filter((s) => rulesOf.has(s)));
    // the states as evaluation leaves them, device after device
    const current = new Map<string, ZoneStates>([...stored].map(([s, m]) => [s, new Map(m)]));
    const zoneRules = new Map<string, ZoneRule>([...rulesOf.values()].flat().map((r) => [r.id, r]));
    const advanced = new Map<string, number>();
    for (const plan of plans) {
      const { deviceId, watermark, replay, from } = plan;
      const fixes = fixesOf.get(deviceId);
      if (fixes === undefined) {
        out.failed.set(deviceId, new Error(`more than ${CHUNK} fixes to evaluate for ${deviceId}: not evaluated`));
        continue;
      }
      const result: GeofenceResult = { fixes: fixes.length, raised: [], replayed: replay };
      out.devices.set(deviceId, result);
      const bySubject = new Map<string, FixRow[]>();
      for (const f of fixes) {
        const list = bySubject.get(f.subject_id) ?? [];
        list.push(f);
        bySubject.set(f.subject_id, list);
      }
      for (const subjectId of [...bySubject.keys()].sort()) {
        const rules = rulesOf.get(subjectId);
        if (!rules) continue;
        const zones = prepareZones(replay ? rules.map((r) => ({ ...r, since: Math.max(r.since, from) })) : rules);
        const states = replay ? new Map() : (current.get(subjectId) ?? new Map());
        const subjectFixes = bySubject.get(subjectId)!;
        const ran = evaluateFixes(zones, states, subjectFixes);
        const receivedAt = new Map(subjectFixes.map((f) => [f.ts, f.received_at]));
        for (const finding of ran.findings) {
          const late = finding.kind !== 'breach_end' && isLate(finding.provenAt, receivedAt.get(finding.provenAt), watermark);
          const alert = await applyFinding(client, subjectId, deviceId, finding, late, replay);
          if (alert) {
            result.raised.push(alert);
            deps.metrics.alertsRaised.inc({ type: alert.type });
            const rec = finding.kind === 'breach' ? receivedAt.get(finding.provenAt) : undefined;
            if (rec !== undefined && !late) deps.metrics.alertLatency.observe((alert.raised_at.getTime() - rec) / 1000);
          }
        }
        // what a later device of the batch would load: the stored states overwritten by these
        current.set(subjectId, new Map([...(current.get(subjectId) ?? []), ...ran.states]));
      }
      if (fixes.length) advanced.set(deviceId, Math.max(watermark ?? -Infinity, fixes[fixes.length - 1]!.ts));
    }
    const writes: StateWrite[] = [...current].map(([subjectId, states]) => ({ subjectId, states, before: stored.get(subjectId) ?? new Map() }));
    await writeStates(client, writes, zoneRules);
    await advanceGeofenceWatermarks(client, advanced);
    return out;
  });
}

/**
 * Each device's fixes after its `from` (inclusive in a replay), in device-time order, with the
 * subject fitted at each fix's time; a device with more than CHUNK is left out (undefined).
 */
async function loadFixes(client: PoolClient, plans: Array<{ deviceId: string; from: number; replay: boolean }>): Promise<Map<string, FixRow[]>> {
  const r = await client.query<{ device_id: string; ts: Date; lon: number; lat: number; accuracy_m: number; received_at: Date; subject_id: string }>(
    `SELECT q.device_id, f.ts, f.lon, f.lat, f.accuracy_m, f.received_at, f.subject_id
       FROM unnest($1::text[], $2::timestamptz[], $3::boolean[]) WITH ORDINALITY AS q(device_id, from_ts, incl, n)
       CROSS JOIN LATERAL (
         SELECT r.ts, r.lon, r.lat, r.accuracy_m, r.received_at, a.subject_id
           FROM readings r
           JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')
          WHERE r.device_id = q.device_id AND r.stream = 'gps' AND (r.ts > q.from_ts OR (q.incl AND r.ts = q.from_ts))
          ORDER BY r.ts LIMIT $4) AS f
      ORDER BY q.n, f.ts`,
    [plans.map((p) => p.deviceId), plans.map((p) => new Date(p.from)), plans.map((p) => p.replay), CHUNK],
  );
  const out = new Map<string, FixRow[]>(plans.map((p) => [p.deviceId, []]));
  for (const x of r.rows) {
    out.get(x.device_id)!.push({ ts: x.ts.getTime(), lon: x.lon, lat: x.lat, accuracy_m: x.accuracy_m, received_at: x.received_at.getTime(), subject_id: x.subject_id });
  }
  for (const [d, fixes] of out) if (fixes.length === CHUNK) out.delete(d);
  return out;
}

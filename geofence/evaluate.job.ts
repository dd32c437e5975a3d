import type { PoolClient } from 'pg';
import { advanceWatermark, withTransaction, type Pool } from '../src/db.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import { endCondition, overlappingAlerts, raiseAlert, type AlertRow } from '../alerts/alerts.repo.js';
import { initialState, type Finding, type Fix, type ZoneState } from './breach.js';
import { advanceZones, evaluateFixes, prepareZones, type ZoneStates } from './evaluate.js';
import { loadRules } from './zones.repo.js';

/**
 * The evaluation worker's geofence step for one device: loads its unevaluated fixes in device
 * order, runs the pure core against the zones of the subject fitted at each fix's time, and
 * stores the breach states, the device watermark and any alerts in one transaction.
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

/** `dirtyFrom`: the earliest device time (ms) of the new fixes, when the signal carried it. */
export async function evaluateDeviceGeofence(deps: GeofenceDeps, deviceId: string, dirtyFrom: number | null): Promise<GeofenceResult> {
  const result: GeofenceResult = { fixes: 0, raised: [], replayed: false };
  return withTransaction(deps.pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('geofence-device:' || $1))`, [deviceId]);
    const wm = await client.query<{ watermark: Date }>(`SELECT watermark FROM geofence_progress WHERE device_id = $1`, [deviceId]);
    const watermark = wm.rows[0]?.watermark.getTime() ?? null;
    const replay = watermark !== null && dirtyFrom !== null && dirtyFrom <= watermark;
    const from = replay ? dirtyFrom! - REPLAY_MS : (watermark ?? (dirtyFrom ?? 0) - 1);
    const fixes = await loadFixes(client, deviceId, from, replay);
    result.fixes = fixes.length;
    result.replayed = replay;
    const bySubject = new Map<string, FixRow[]>();
    for (const f of fixes) {
      const list = bySubject.get(f.subject_id) ?? [];
      list.push(f);
      bySubject.set(f.subject_id, list);
    }
    for (const subjectId of [...bySubject.keys()].sort()) {
      await lockSubject(client, subjectId);
      const rules = await loadRules(client, subjectId);
      if (rules.length === 0) continue;
      const zones = prepareZones(replay ? rules.map((r) => ({ ...r, since: Math.max(r.since, from) })) : rules);
      const states = replay ? new Map<string, ZoneState>() : await loadStates(client, subjectId);
      const subjectFixes = bySubject.get(subjectId)!;
      const ran = evaluateFixes(zones, states, subjectFixes);
      const receivedAt = new Map(subjectFixes.map((f) => [f.ts, f.received_at]));
      for (const finding of ran.findings) {
        const late = finding.kind !== 'breach_end' && watermark !== null && finding.provenAt <= watermark;
        const alert = await applyFinding(client, subjectId, deviceId, finding, late, replay);
        if (alert) {
          result.raised.push(alert);
          deps.metrics.alertsRaised.inc({ type: alert.type });
          const rec = finding.kind === 'breach' ? receivedAt.get(finding.provenAt) : undefined;
          if (rec !== undefined && !late) deps.metrics.alertLatency.observe((alert.raised_at.getTime() - rec) / 1000);
        }
      }
      await saveStates(client, subjectId, ran.states);
    }
    if (fixes.length) {
      const newest = Math.max(watermark ?? -Infinity, fixes[fixes.length - 1]!.ts);
      await advanceWatermark(client, 'geofence_progress', deviceId, new Date(newest));
    }
    return result;
  });
}

async function loadFixes(client: PoolClient, deviceId: string, from: number, inclusive: boolean): Promise<FixRow[]> {
  const r = await client.query<{ ts: Date; lon: number; lat: number; accuracy_m: number; received_at: Date; subject_id: string }>(
    `SELECT r.ts, r.lon, r.lat, r.accuracy_m, r.received_at, a.subject_id
       FROM readings r
       JOIN assignments a ON a.device_id = r.device_id AND r.ts >= a.start_at AND r.ts < coalesce(a.end_at, 'infinity')
      WHERE r.device_id = $1 AND r.stream = 'gps' AND (r.ts > $2 OR ($3 AND r.ts = $2))
      ORDER BY r.ts LIMIT $4`,
    [deviceId, new Date(from), inclusive, CHUNK],
  );
  if (r.rows.length === CHUNK) throw new Error(`more than ${CHUNK} fixes to evaluate for ${deviceId}: evaluated in a later retry`);
  return r.rows.map((x) => ({ ts: x.ts.getTime(), lon: x.lon, lat: x.lat, accuracy_m: x.accuracy_m, received_at: x.received_at.getTime(), subject_id: x.subject_id }));
}

export async function lockSubject(client: PoolClient, subjectId: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('zone-state:' || $1))`, [subjectId]);
}

export async function loadStates(client: PoolClient, subjectId: string): Promise<ZoneStates> {
  const r = await client.query<{ zone_id: string; state: ZoneState }>(`SELECT zone_id, state FROM zone_states WHERE subject_id = $1`, [subjectId]);
  return new Map(r.rows.map((x) => [x.zone_id, { ...initialState(), ...x.state }]));
}

export async function saveStates(client: PoolClient, subjectId: string, states: ZoneStates): Promise<void> {
  if (states.size === 0) return;
  await client.query(
    `INSERT INTO zone_states (subject_id, zone_id, state)
     SELECT $1, z.id::uuid, z.state FROM jsonb_to_recordset($2::jsonb) AS z(id text, state jsonb)
     ON CONFLICT (subject_id, zone_id) DO UPDATE SET state = excluded.state, updated_at = now()`,
    [subjectId, JSON.stringify([...states].map(([id, state]) => ({ id, state })))],
  );
}

/** Stores one finding: a new alert (returned), a recurrence, or the end of a breach. */
export async function applyFinding(
  client: PoolClient,
  subjectId: string,
  deviceId: string | null,
  f: Finding,
  late: boolean,
  replay: boolean,
): Promise<AlertRow | null> {
  if (f.kind === 'breach_end') {
    await endCondition(client, subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(f.endedAt));
    return null;
  }
  // In a replay a breach under way before the replay window is found again with a later start:
  // it overlaps the alert already raised and is the same breach.
  if (replay && (await overlappingAlerts(client, subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(f.provenAt))) > 0) return null;
  const evidence = f.kind === 'breach' ? f.evidence : f.lastFixTs !== null ? [{ last_fix_ts: new Date(f.lastFixTs).toISOString() }] : [];
  const r = await raiseAlert(client, { type: f.type, subjectId, deviceId, zoneId: f.zoneId, startedAt: new Date(f.startedAt), late, evidence });
  return r.outcome === 'raised' ? r.alert : null;
}

/**
 * The clock's part (scheduled every minute): curfew windows with no fix for 15 minutes, and
 * breaches whose enforcement ended, for every subject with a curfew.
 */
export async function tickCurfews(deps: GeofenceDeps, now: number): Promise<AlertRow[]> {
  const subjects = await deps.pool.query<{ subject_id: string }>(
    `SELECT DISTINCT subject_id FROM zones WHERE kind = 'inclusion' AND deleted_at IS NULL AND coalesce(active_to, 'infinity') > now() - interval '1 day'`,
  );
  const raised: AlertRow[] = [];
  for (const { subject_id } of subjects.rows) {
    const client = await deps.pool.connect();
    try {
      await client.query('BEGIN');
      await lockSubject(client, subject_id);
      const device = await client.query<{ device_id: string }>(
        `SELECT a.device_id FROM assignments a JOIN devices d ON d.id = a.device_id
          WHERE a.subject_id = $1 AND a.start_at <= $2 AND coalesce(a.end_at, 'infinity') > $2 AND d.kind IN ('gps', 'combined') LIMIT 1`,
        [subject_id, new Date(now)],
      );
      if (!device.rows[0]) {
        await client.query('ROLLBACK');
        continue; // no GPS tag fitted now: nothing to expect fixes from
      }
      const zones = prepareZones(await loadRules(client, subject_id));
      const ran = advanceZones(zones, await loadStates(client, subject_id), now);
      for (const f of ran.findings) {
        const alert = await applyFinding(client, subject_id, device.rows[0].device_id, f, false, false);
        if (alert) {
          raised.push(alert);
          deps.metrics.alertsRaised.inc({ type: alert.type });
        }
      }
      await saveStates(client, subject_id, ran.states);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      deps.logger.warn({ err: (err as Error).message, subject: subject_id }, 'curfew tick failed for a subject');
    } finally {
      client.release();
    }
  }
  return raised;
}

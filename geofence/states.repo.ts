import type { PoolClient } from 'pg';
import type { Queryable } from '../platform/db.js';
import { endCondition, overlappingAlerts, raiseAlert, type AlertRow } from '../alerts/alerts.repo.js';
import { initialState, isIdle, type Finding, type ZoneRule, type ZoneState } from './breach.js';
import type { ZoneStates } from './evaluate.js';

/**
 * Breach states per (subject, zone), the locks that serialise their writers, the geofence
 * watermark, and how a finding becomes an alert. An idle exclusion state (no run, no breach)
 * behaves exactly as no state at all, so it is not stored: rows exist only for zones where
 * something is under way, and for curfews.
 */

/** Advisory transaction locks on many keys, taken in one order (by hash) so two batches never deadlock. */
export async function lockKeys(client: PoolClient, namespace: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await client.query(
    `SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext($1 || k) AS h FROM unnest($2::text[]) AS k ORDER BY h) AS x`,
    [namespace, keys],
  );
}

export async function lockSubject(client: PoolClient, subjectId: string): Promise<void> {
  await lockKeys(client, 'zone-state:', [subjectId]);
}

export async function loadStates(client: Queryable, subjectId: string): Promise<ZoneStates> {
  return (await loadStatesOf(client, [subjectId])).get(subjectId) ?? new Map();
}

/** The stored states of many subjects (a subject without any maps to nothing). */
export async function loadStatesOf(client: Queryable, subjectIds: readonly string[]): Promise<Map<string, ZoneStates>> {
  const out = new Map<string, ZoneStates>();
  if (subjectIds.length === 0) return out;
  const r = await client.query<{ subject_id: string; zone_id: string; state: ZoneState }>(
    `SELECT subject_id, zone_id, state FROM zone_states WHERE subject_id = ANY($1::text[])`,
    [subjectIds],
  );
  for (const x of r.rows) {
    let m = out.get(x.subject_id);
    if (!m) out.set(x.subject_id, (m = new Map()));
    m.set(x.zone_id, { ...initialState(), ...x.state });
  }
  return out;
}

export async function saveStates(client: Queryable, subjectId: string, states: ZoneStates): Promise<void> {
  await writeStates(client, [{ subjectId, states, before: null }], new Map());
}

export interface StateWrite {
  subjectId: string;
  /** the states after evaluation: zones absent here are left as stored */
  states: ZoneStates;
  /** the stored states before, to write only what changed; null writes every state given */
  before: ZoneStates | null;
}

/**
 * Writes the states that changed, for many subjects in two statements: upserts the states
 * under way, deletes the idle exclusion states (the same as none). `rules` tells exclusion from
 * inclusion zones (a zone id not found there is kept as it is).
 */
export async function writeStates(client: Queryable, writes: readonly StateWrite[], rules: Map<string, ZoneRule>): Promise<void> {
  const upsert: Array<{ s: string; z: string; state: ZoneState }> = [];
  const drop: Array<[string, string]> = [];
  for (const w of writes) {
    for (const [zoneId, state] of w.states) {
      const prior = w.before?.get(zoneId);
      if (rules.get(zoneId)?.kind === 'exclusion' && isIdle(state)) {
        if (w.before === null || prior !== undefined) drop.push([w.subjectId, zoneId]);
      } else if (w.before === null || prior === undefined || JSON.stringify(prior) !== JSON.stringify(state)) {
        upsert.push({ s: w.subjectId, z: zoneId, state });
      }
    }
  }
  if (upsert.length) {
    await client.query(
      `INSERT INTO zone_states (subject_id, zone_id, state)
       SELECT z.s, z.z::uuid, z.state FROM jsonb_to_recordset($1::jsonb) AS z(s text, z text, state jsonb) ORDER BY z.s, z.z
       ON CONFLICT (subject_id, zone_id) DO UPDATE SET state = excluded.state, updated_at = now()`,
      [JSON.stringify(upsert)],
    );
  }
  if (drop.length) {
    await client.query(`DELETE FROM zone_states WHERE (subject_id, zone_id) IN (SELECT s, z::uuid FROM unnest($1::text[], $2::text[]) AS d(s, z))`, [
      drop.map((d) => d[0]),
      drop.map((d) => d[1]),
    ]);
  }
}

/** Moves many devices' geofence watermarks forward (never back): `advanceWatermark` for a batch. */
export async function advanceGeofenceWatermarks(client: Queryable, marks: ReadonlyMap<string, number>): Promise<void> {
  if (marks.size === 0) return;
  const ids = [...marks.keys()].sort();
  await client.query(
    `INSERT INTO geofence_progress (device_id, watermark) SELECT * FROM unnest($1::text[], $2::timestamptz[])
     ON CONFLICT (device_id) DO UPDATE SET watermark = greatest(geofence_progress.watermark, excluded.watermark), updated_at = now()`,
    [ids, ids.map((d) => new Date(marks.get(d)!))],
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

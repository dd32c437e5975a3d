import { lockKeys, type Queryable, type TxClient } from '../platform/db.js';
import { endCondition, type AlertRow } from '../alerts/alerts.repo.js';
import { applyAlertFinding, type FindingContext } from '../alerts/raise.js';
import { initialState, worthStoring, type Finding, type ZoneRule, type ZoneState } from './breach.js';
import type { ZoneStates } from './evaluate.js';

/**
 * Breach states per (subject, zone), the locks that serialise their writers, the geofence
 * watermark, and how a finding becomes an alert. An idle exclusion state (no run, no breach)
 * behaves exactly as no state at all, so it is not stored: rows exist only for zones where
 * something is under way, and for curfews.
 */

export async function lockSubject(client: TxClient, subjectId: string): Promise<void> {
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

export async function saveStates(client: TxClient, subjectId: string, states: ZoneStates): Promise<void> {
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
export async function writeStates(client: TxClient, writes: readonly StateWrite[], rules: Map<string, ZoneRule>): Promise<void> {
  const upsert: Array<{ s: string; z: string; state: ZoneState }> = [];
  const drop: Array<[string, string]> = [];
  for (const w of writes) {
    for (const [zoneId, state] of w.states) {
      const prior = w.before?.get(zoneId);
      const kind = rules.get(zoneId)?.kind;
      if (kind !== undefined && !worthStoring(kind, state)) {
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

/**
 * Stores one geofence finding: the end of a breach, or the alert it proves (alerts/raise.ts: once,
 * late by the receipt of its proving fix). In a replay a breach under way before the replay
 * window is found again with a later start: it overlaps the alert already raised and is the same.
 */
export async function applyFinding(client: TxClient, subjectId: string, deviceId: string | null, f: Finding, ctx: FindingContext, replay: boolean): Promise<AlertRow | null> {
  if (f.kind === 'breach_end') {
    await endCondition(client, subjectId, f.type, f.zoneId, new Date(f.startedAt), new Date(f.endedAt));
    return null;
  }
  const evidence = f.kind === 'breach' ? f.evidence : f.lastFixTs !== null ? [{ last_fix_ts: new Date(f.lastFixTs).toISOString() }] : [];
  return applyAlertFinding(
    client,
    { type: f.type, subjectId, deviceId, zoneId: f.zoneId, startedAt: f.startedAt, provenAt: f.provenAt, evidence },
    { ...ctx, ...(replay ? { sameIfOverlapping: { overlapTo: f.provenAt } } : {}) },
  );
}

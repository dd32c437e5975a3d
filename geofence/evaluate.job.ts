import type { PoolClient } from 'pg';
import { withTransaction, type Pool, lockKeys } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import { initialState, type Fix, type ZoneRule } from './breach.js';
import { evaluateFixes, prepareZones, type ZoneStates } from './evaluate.js';
import { loadRulesOf } from './zones.repo.js';
import { zoneCache } from './zone-cache.js';
import { countFixes, loadFixes, loadProgress, subjectsMetInReplay, writeProgress, type FixRow, type LiveRange, type Progress, type ProgressWrite } from './evaluate.repo.js';
import { applyFinding, loadStatesOf, writeStates, type StateWrite } from './states.repo.js';

/**
 * The evaluation worker's geofence step for a batch of devices. Each device's unevaluated fixes
 * are taken in chunks of at most `chunk` (keyset by device time), one transaction per round of
 * chunks for the batch: a round loads the watermarks, the fixes, the zones and the breach states
 * of the subjects fitted at those fixes' times with one set-based query each, runs the pure core
 * device by device (in device-id order, each device's fixes in device-time order), and commits
 * the states that changed, the watermarks and any alerts. A device whose chunk was full goes on
 * to the next round from where its watermark now stands, with the states just stored: so a long
 * backlog is evaluated to the end, and a crash between rounds resumes after the last one
 * committed without raising anything twice. When a round's transaction fails, its devices are
 * tried one by one, so a device that cannot be evaluated fails alone.
 *
 * Late fixes (at or before the watermark) are replayed: from a clear state `REPLAY_MS` before
 * the earliest late fix up to the newest fix. A breach found again that overlaps an alert
 * already raised for the same (subject, type, zone) is the same breach and is not raised twice;
 * a new one proven by a fix at or before the watermark is raised with `late: true`. A replay
 * longer than a chunk stores where it stands (`replay_from`, `replay_cursor`) as it commits, and
 * the next round (or the next job, after a crash) continues it.
 *
 * A mark at or before the watermark is not always a late fix: ingest sets the mark after its
 * commit, so a job may have read (and evaluated) a batch whose mark reaches a later job. Live
 * rounds store their range: `live_count` fixes in (`live_from`, watermark]. A mark inside that
 * range whose fixes still number `live_count` is covered (nothing arrived there since the read)
 * and the device goes on from its watermark; a bigger count means a fix arrived late there and
 * is replayed. A mark at or before `live_from`, or with no live range known (after a replay),
 * replays. A device never evaluated reads from `REPLAY_MS` before its mark, so that fixes of a
 * batch committed earlier, whose mark a later job holds, are read with it and found covered.
 */

export const REPLAY_MS = 6 * 3600_000;
/** most fixes of one device evaluated in one transaction */
export const CHUNK = 20_000;

export interface GeofenceDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  /** most fixes of one device per transaction (default CHUNK; smaller in tests) */
  chunk?: number;
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
  /** devices that could not be evaluated to the end (the rounds committed before stay) */
  failed: Map<string, Error>;
}

/** One device alone: the batch of one. Throws what the device's evaluation threw. */
export async function evaluateDeviceGeofence(deps: GeofenceDeps, deviceId: string, dirtyFrom: number | null): Promise<GeofenceResult> {
  const r = await evaluateDevicesGeofence(deps, [{ deviceId, dirtyFrom }]);
  const err = r.failed.get(deviceId);
  if (err) throw err;
  return r.devices.get(deviceId)!;
}

/** Evaluates a batch of distinct devices to the end of their fixes (see the module comment). */
export async function evaluateDevicesGeofence(deps: GeofenceDeps, batch: readonly DeviceToEvaluate[]): Promise<GeofenceBatchResult> {
  const out: GeofenceBatchResult = { devices: new Map(), failed: new Map() };
  const chunk = deps.chunk ?? CHUNK;
  let round = [...batch].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  while (round.length > 0) {
    const more = await roundOrEach(deps, round, chunk, out);
    // the dirty mark has been honoured: the next rounds continue from the stored progress
    round = more.map((deviceId) => ({ deviceId, dirtyFrom: null }));
  }
  return out;
}

/** One round for the batch; if its transaction fails, one round per device. Returns the devices with more to do. */
async function roundOrEach(deps: GeofenceDeps, items: DeviceToEvaluate[], chunk: number, out: GeofenceBatchResult): Promise<string[]> {
  try {
    return merge(out, await evaluateRound(deps, items, chunk));
  } catch (err) {
    if (items.length === 1) {
      out.failed.set(items[0]!.deviceId, err as Error);
      return [];
    }
  }
  const more: string[] = [];
  for (const item of items) {
    try {
      more.push(...merge(out, await evaluateRound(deps, [item], chunk)));
    } catch (err) {
      out.failed.set(item.deviceId, err as Error);
    }
  }
  return more;
}

function merge(out: GeofenceBatchResult, round: Map<string, GeofenceResult & { full: boolean }>): string[] {
  const more: string[] = [];
  for (const [deviceId, r] of round) {
    const sum = out.devices.get(deviceId) ?? { fixes: 0, raised: [], replayed: false };
    out.devices.set(deviceId, { fixes: sum.fixes + r.fixes, raised: [...sum.raised, ...r.raised], replayed: sum.replayed || r.replayed });
    if (r.full) more.push(deviceId);
  }
  return more;
}

interface Plan {
  deviceId: string;
  watermark: number | null;
  replay: boolean;
  /** a replay's first round: states start clear; fixes from `from` inclusive */
  restart: boolean;
  /** fixes after this device time (ms), or from it inclusive when `restart` */
  from: number;
  /** where the replay started (curfew absence counts from there) */
  replayFrom: number;
}

/** Consecutive live reads extend one range while it holds at most this many fixes (the recount stays small). */
const LIVE_MAX = CHUNK;

/** The marks of a round that fall in their device's last live range: the range each must be recounted over. */
function rangesToRecount(items: readonly DeviceToEvaluate[], progress: Map<string, Progress>): Array<{ deviceId: string; from: number; to: number }> {
  return items.flatMap(({ deviceId, dirtyFrom }) => {
    const p = progress.get(deviceId);
    if (!p || dirtyFrom === null || p.replayCursor !== null || p.liveFrom === null || p.liveCount === null) return [];
    return p.liveFrom < dirtyFrom && dirtyFrom <= p.watermark ? [{ deviceId, from: p.liveFrom, to: p.watermark }] : [];
  });
}

/** The live range a live round leaves: its own read, or the stored range extended when it ends where the read starts. */
function liveRangeAfter(p: Progress | undefined, plan: Plan, read: number, watermark: number): LiveRange {
  const extend = p?.liveFrom != null && p.liveCount != null && plan.from === p.watermark && p.liveCount + read <= LIVE_MAX;
  return extend ? { liveFrom: p!.liveFrom, liveCount: p!.liveCount! + read } : { liveFrom: plan.from, liveCount: read };
}

/** Where a device's evaluation goes on from: a new replay, a replay under way, or after the watermark. */
function planOf(deviceId: string, p: Progress | undefined, dirtyFrom: number | null): Plan {
  const watermark = p?.watermark ?? null;
  if (watermark !== null && dirtyFrom !== null && dirtyFrom <= watermark) {
    const start = dirtyFrom - REPLAY_MS;
    // a replay under way that has not yet reached the new start covers it
    if (!(p!.replayCursor !== null && p!.replayCursor < start)) return { deviceId, watermark, replay: true, restart: true, from: start, replayFrom: start };
  }
  if (p?.replayCursor != null) return { deviceId, watermark, replay: true, restart: false, from: p.replayCursor, replayFrom: p.replayFrom! };
  // never evaluated: from REPLAY_MS before the mark (a sweep: from the start)
  const first = dirtyFrom === null ? -1 : dirtyFrom - REPLAY_MS;
  return { deviceId, watermark, replay: false, restart: false, from: watermark ?? first, replayFrom: 0 };
}

/** One transaction: at most `chunk` fixes of each device, evaluated and committed. */
async function evaluateRound(deps: GeofenceDeps, items: readonly DeviceToEvaluate[], chunk: number): Promise<Map<string, GeofenceResult & { full: boolean }>> {
  const out = new Map<string, GeofenceResult & { full: boolean }>();
  if (items.length === 0) return out;
  return withTransaction(deps.pool, async (client) => {
    const ids = items.map((i) => i.deviceId);
    await lockKeys(client, 'geofence-device:', ids);
    const progress = await loadProgress(client, ids);
    // a mark whose live range still holds the fixes read is covered: as if there were none
    const recount = rangesToRecount(items, progress);
    const counted = await countFixes(client, recount);
    const covered = new Set(recount.filter((r) => counted.get(r.deviceId) === progress.get(r.deviceId)!.liveCount).map((r) => r.deviceId));
    const plans = items.map(({ deviceId, dirtyFrom }) => planOf(deviceId, progress.get(deviceId), covered.has(deviceId) ? null : dirtyFrom));
    const fixesOf = await loadFixes(client, plans, chunk);
    const subjects = [...new Set([...fixesOf.values()].flatMap((fs) => fs.map((f) => f.subject_id)))].sort();
    await lockKeys(client, 'zone-state:', subjects);
    const rulesOf = await loadRulesOf(client, subjects);
    const stored = await loadStatesOf(client, subjects.filter((s) => rulesOf.has(s)));
    // a replay going on from a cursor starts clear for a subject it has not met yet
    const metInReplay = await subjectsMetInReplay(client, plans.filter((p) => p.replay && !p.restart));
    // the states as evaluation leaves them, device after device
    const current = new Map<string, ZoneStates>([...stored].map(([s, m]) => [s, new Map(m)]));
    const zoneRules = new Map<string, ZoneRule>([...rulesOf.values()].flat().map((r) => [r.id, r]));
    const advanced = new Map<string, ProgressWrite>();
    for (const plan of plans) {
      const { deviceId, watermark, replay } = plan;
      const fixes = fixesOf.get(deviceId)!;
      const result = { fixes: fixes.length, raised: [] as AlertRow[], replayed: replay, full: fixes.length >= chunk };
      out.set(deviceId, result);
      const bySubject = new Map<string, FixRow[]>();
      for (const f of fixes) {
        const list = bySubject.get(f.subject_id) ?? [];
        list.push(f);
        bySubject.set(f.subject_id, list);
      }
      for (const subjectId of [...bySubject.keys()].sort()) {
        const rules = rulesOf.get(subjectId);
        if (!rules) continue;
        const zones = replay ? prepareZones(rules.map((r) => ({ ...r, since: Math.max(r.since, plan.replayFrom) }))) : zoneCache.prepare(subjectId, rules);
        const clear = replay && (plan.restart || !metInReplay.get(deviceId)?.has(subjectId));
        const states = clear ? new Map() : (current.get(subjectId) ?? new Map());
        const subjectFixes = bySubject.get(subjectId)!;
        const ran = evaluateFixes(zones, states, subjectFixes);
        const receivedAt = new Map(subjectFixes.map((f) => [f.ts, f.received_at]));
        const ctx = { receivedAt: (ts: number) => receivedAt.get(ts), watermark, metrics: deps.metrics };
        for (const finding of ran.findings) {
          const alert = await applyFinding(client, subjectId, deviceId, finding, ctx, replay);
          if (alert) result.raised.push(alert);
        }
        // what a later device or round loads: a replay's states replace the subject's states
        // of its live zones (a zone it left untouched is idle), others overwrite those they changed
        const base = clear ? new Map([...(current.get(subjectId) ?? [])].filter(([z]) => !zoneRules.has(z))) : (current.get(subjectId) ?? new Map());
        if (clear) for (const r of rules) if (!ran.states.has(r.id) && current.get(subjectId)?.has(r.id)) base.set(r.id, initialState());
        current.set(subjectId, new Map([...base, ...ran.states]));
      }
      const last = fixes.length ? fixes[fixes.length - 1]!.ts : null;
      if (last !== null || replay) {
        const next = Math.max(watermark ?? -Infinity, last ?? -Infinity);
        advanced.set(deviceId, {
          watermark: next,
          replayFrom: replay && result.full ? plan.replayFrom : null,
          replayCursor: replay && result.full ? last : null,
          ...(replay ? { liveFrom: null, liveCount: null } : liveRangeAfter(progress.get(deviceId), plan, fixes.length, next)),
        });
      }
    }
    const writes: StateWrite[] = [...current].map(([subjectId, states]) => ({ subjectId, states, before: stored.get(subjectId) ?? new Map() }));
    await writeStates(client, writes, zoneRules);
    await writeProgress(client, advanced);
    return out;
  });
}

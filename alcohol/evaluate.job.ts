import { DateTime } from 'luxon';
import { advanceWatermark, lockKeys, withTransaction, type Pool, type TxClient } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import { applyAlertFinding, type FindingContext } from '../alerts/raise.js';
import type { AlertType } from '../alerts/rules.js';
import { classifySubject, type AlcoholReadingIn } from './classify.js';
import type { AlcoholEvent } from './events.js';
import type { Obstruction } from './tamper.js';
import type { AlcoholParams } from './params.js';
import { alcoholWatermark, ensureParams, fittedIntervals, loadEventReviews, saveDays, subjectAlcoholReadings, subjectsWornSince } from './alcohol.repo.js';

/**
 * The evaluation worker's alcohol step for one device: re-classifies the days of each subject
 * the device was fitted to from the day before its earliest new reading (late readings change
 * past days; a day result is replaced, never duplicated; the reviews stored on the alerts give
 * the reviewed figures, so a re-evaluation never undoes a review), and raises `drinking_event`,
 * `alcohol_interference` and `alcohol_tamper` once each, with their evidence readings: each
 * drinking event and tamper its own alert, pending review. An alert is late when the reading
 * that proved it is at or before the device's alcohol watermark.
 */

const HISTORY_MS = 3 * 86400_000; // readings before the re-classified days: baseline and runs under way
const MAX_EVIDENCE = 100;

export interface AlcoholDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  params: AlcoholParams;
}

export async function evaluateDeviceAlcohol(deps: AlcoholDeps, deviceId: string, dirtyFrom: number | null, now: number): Promise<AlertRow[]> {
  const raised: AlertRow[] = [];
  return withTransaction(deps.pool, async (client) => {
    await lockKeys(client, 'alcohol-device:', [deviceId]);
    const watermark = await alcoholWatermark(client, deviceId);
    const changedFrom = dirtyFrom ?? now - 86400_000;
    const subjects = await subjectsWornSince(client, deviceId, new Date(changedFrom));
    const version = await ensureParams(client, deps.params);
    let newest = watermark ?? -Infinity;
    for (const { subject_id, timezone } of subjects) {
      await lockKeys(client, 'alcohol-subject:', [subject_id]);
      const firstDay = DateTime.fromMillis(changedFrom, { zone: timezone }).minus({ days: 1 }).startOf('day');
      const loadFrom = firstDay.toMillis() - HISTORY_MS;
      const lastDay = DateTime.fromMillis(now, { zone: timezone }).plus({ days: 1 }).startOf('day');
      const readings = await subjectAlcoholReadings(client, subject_id, new Date(loadFrom), new Date(lastDay.toMillis()));
      const fitted = await fittedIntervals(client, subject_id, new Date(loadFrom), new Date(lastDay.toMillis()));
      // reviews are read under the subject's lock (a review takes it too): re-evaluating keeps them
      const reviews = await loadEventReviews(client, subject_id, new Date(loadFrom), new Date(lastDay.toMillis()));
      const c = classifySubject(readings, fitted, firstDay.toISODate()!, lastDay.toISODate()!, timezone, deps.params, reviews);
      let receivedTo = -Infinity;
      for (const r of readings) {
        newest = Math.max(newest, r.ts);
        receivedTo = Math.max(receivedTo, r.received_at);
      }
      await saveDays(client, subject_id, c.days, version, Number.isFinite(receivedTo) ? new Date(receivedTo) : null);
      // runs that began before the loaded history may be truncated: only alert what starts after its first day
      const eligible = (x: { start: number }) => x.start >= loadFrom + 86400_000;
      const receipts = new Map(readings.map((r) => [r.ts, r.received_at]));
      const ctx: FindingContext = { receivedAt: (ts) => receipts.get(ts), watermark, metrics: deps.metrics };
      for (const e of c.events.filter(eligible)) {
        const type: AlertType = e.kind === 'drinking' ? 'drinking_event' : 'alcohol_interference';
        const a = await alert(client, subject_id, deviceId, type, e, readings, ctx, provenAtEvent(e, readings, deps.params), version);
        if (a) raised.push(a);
      }
      for (const t of c.tampers.filter(eligible)) {
        const a = await alert(client, subject_id, deviceId, 'alcohol_tamper', t, readings, ctx, provenAtTamper(t, readings, deps.params), version);
        if (a) raised.push(a);
      }
    }
    if (Number.isFinite(newest)) {
      await advanceWatermark(client, 'alcohol_progress', deviceId, new Date(newest));
    }
    return raised;
  });
}

/** The alert of one event or tamper (alerts/raise.ts); an overlapping alert already raised is the same event. */
async function alert(
  client: TxClient,
  subjectId: string,
  deviceId: string,
  type: AlertType,
  x: AlcoholEvent | Obstruction,
  readings: Array<AlcoholReadingIn & { received_at?: number }>,
  ctx: FindingContext,
  provenAt: number,
  paramsVersion: string,
): Promise<AlertRow | null> {
  const sorted = [...readings].sort((a, b) => a.ts - b.ts);
  const evidence = sorted.slice(x.from, x.to + 1).slice(0, MAX_EVIDENCE).map((r) => ({ ts: new Date(r.ts).toISOString(), tac: r.tac, ir: r.ir ?? null, temp_c: r.temp_c }));
  const detail = 'peak' in x ? { kind: x.kind, peak_tac: x.peak, positives: x.positives } : { kind: x.kind, baseline_ir: x.baseline_ir, baseline_temp_c: x.baseline_temp_c };
  // the curve, the rule that fired and the parameter version: what a review and an evidence pack show
  const summary = { ...detail, start: new Date(x.start).toISOString(), end: new Date(x.end).toISOString(), params_version: paramsVersion };
  return applyAlertFinding(
    client,
    { type, subjectId, deviceId, zoneId: null, startedAt: x.start, provenAt, endedAt: x.ongoing ? null : x.end, evidence: [{ summary }, ...evidence] },
    { ...ctx, sameIfOverlapping: { overlapTo: x.end } },
  );
}

/** Device time of the reading that made the run an event (or, for interference, its last reading). */
function provenAtEvent(e: AlcoholEvent, readings: AlcoholReadingIn[], p: AlcoholParams): number {
  if (e.kind === 'interference') return e.end;
  const sorted = [...readings].sort((a, b) => a.ts - b.ts);
  let positives = 0;
  for (let i = e.from; i <= e.to; i++) {
    if (sorted[i]!.tac >= p.tac_threshold) positives++;
    if (positives >= p.event_min_readings && sorted[i]!.ts - e.start >= p.event_min_minutes * 60_000) return sorted[i]!.ts;
  }
  return e.end;
}

function provenAtTamper(t: Obstruction, readings: AlcoholReadingIn[], p: AlcoholParams): number {
  const sorted = [...readings].sort((a, b) => a.ts - b.ts);
  for (let i = t.from; i <= t.to; i++) if (sorted[i]!.ts - t.start >= p.obstruction_min_minutes * 60_000) return sorted[i]!.ts;
  return t.end;
}

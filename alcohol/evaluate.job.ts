import { DateTime } from 'luxon';
import type { PoolClient } from 'pg';
import { advanceWatermark, withTransaction, type Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { endCondition, overlappingAlerts, raiseAlert, type AlertRow } from '../alerts/alerts.repo.js';
import { isLate, type AlertType } from '../alerts/rules.js';
import { classifySubject, type AlcoholReadingIn } from './classify.js';
import type { AlcoholEvent } from './events.js';
import type { Obstruction } from './tamper.js';
import type { AlcoholParams } from './params.js';
import { ensureParams, fittedIntervals, saveDays, subjectAlcoholReadings } from './alcohol.repo.js';

/**
 * The evaluation worker's alcohol step for one device: re-classifies the days of each subject
 * the device was fitted to from the day before its earliest new reading (late readings change
 * past days; a day result is replaced, never duplicated), and raises `drinking_event`,
 * `alcohol_interference` and `alcohol_tamper` once each, with their evidence readings. An
 * alert is late when the reading that proved it is at or before the device's alcohol watermark.
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
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('alcohol-device:' || $1))`, [deviceId]);
    const wm = await client.query<{ watermark: Date }>(`SELECT watermark FROM alcohol_progress WHERE device_id = $1`, [deviceId]);
    const watermark = wm.rows[0]?.watermark.getTime() ?? null;
    const changedFrom = dirtyFrom ?? now - 86400_000;
    const subjects = await client.query<{ subject_id: string; timezone: string }>(
      `SELECT DISTINCT a.subject_id, s.timezone FROM assignments a JOIN subjects s ON s.id = a.subject_id
        WHERE a.device_id = $1 AND coalesce(a.end_at, 'infinity') > $2 ORDER BY a.subject_id`,
      [deviceId, new Date(changedFrom)],
    );
    const version = await ensureParams(client, deps.params);
    let newest = watermark ?? -Infinity;
    for (const { subject_id, timezone } of subjects.rows) {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('alcohol-subject:' || $1))`, [subject_id]);
      const firstDay = DateTime.fromMillis(changedFrom, { zone: timezone }).minus({ days: 1 }).startOf('day');
      const loadFrom = firstDay.toMillis() - HISTORY_MS;
      const lastDay = DateTime.fromMillis(now, { zone: timezone }).plus({ days: 1 }).startOf('day');
      const readings = await subjectAlcoholReadings(client, subject_id, new Date(loadFrom), new Date(lastDay.toMillis()));
      const fitted = await fittedIntervals(client, subject_id, new Date(loadFrom), new Date(lastDay.toMillis()));
      const c = classifySubject(readings, fitted, firstDay.toISODate()!, lastDay.toISODate()!, timezone, deps.params);
      await saveDays(client, subject_id, c.days, version);
      for (const r of readings) newest = Math.max(newest, r.ts);
      // runs that began before the loaded history may be truncated: only alert what starts after its first day
      const eligible = (x: { start: number }) => x.start >= loadFrom + 86400_000;
      for (const e of c.events.filter(eligible)) {
        const type: AlertType = e.kind === 'drinking' ? 'drinking_event' : 'alcohol_interference';
        const a = await alert(client, subject_id, deviceId, type, e, readings, watermark, provenAtEvent(e, readings, deps.params));
        if (a) raised.push(a);
      }
      for (const t of c.tampers.filter(eligible)) {
        const a = await alert(client, subject_id, deviceId, 'alcohol_tamper', t, readings, watermark, provenAtTamper(t, readings, deps.params));
        if (a) raised.push(a);
      }
    }
    if (Number.isFinite(newest)) {
      await advanceWatermark(client, 'alcohol_progress', deviceId, new Date(newest));
    }
    for (const a of raised) deps.metrics.alertsRaised.inc({ type: a.type });
    return raised;
  });
}

async function alert(
  client: PoolClient,
  subjectId: string,
  deviceId: string,
  type: AlertType,
  x: AlcoholEvent | Obstruction,
  readings: Array<AlcoholReadingIn & { received_at?: number }>,
  watermark: number | null,
  provenAt: number,
): Promise<AlertRow | null> {
  const sorted = [...readings].sort((a, b) => a.ts - b.ts);
  if ((await overlappingAlerts(client, subjectId, type, null, new Date(x.start), new Date(x.end))) > 0) {
    if (!x.ongoing) await endCondition(client, subjectId, type, null, new Date(x.start), new Date(x.end));
    return null;
  }
  const evidence = sorted.slice(x.from, x.to + 1).slice(0, MAX_EVIDENCE).map((r) => ({ ts: new Date(r.ts).toISOString(), tac: r.tac, ir: r.ir ?? null, temp_c: r.temp_c }));
  const detail = 'peak' in x ? { kind: x.kind, peak_tac: x.peak, positives: x.positives } : { kind: x.kind, baseline_ir: x.baseline_ir, baseline_temp_c: x.baseline_temp_c };
  const r = await raiseAlert(client, {
    type,
    subjectId,
    deviceId,
    zoneId: null,
    startedAt: new Date(x.start),
    late: isLate(provenAt, readings.find((r) => r.ts === provenAt)?.received_at, watermark),
    evidence: [{ summary: { ...detail, start: new Date(x.start).toISOString(), end: new Date(x.end).toISOString() } }, ...evidence],
  });
  if (r.outcome !== 'raised') return null;
  if (!x.ongoing) await endCondition(client, subjectId, type, null, new Date(x.start), new Date(x.end));
  return r.alert;
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

import type { Pool } from '../../platform/db.js';
import { withTransaction } from '../../platform/db.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { escalateOverdue, transition } from '../../alerts/lifecycle.repo.js';
import { DEFAULT_PARAMS } from '../../alcohol/params.js';
import { evaluateDeviceAlcohol } from '../../alcohol/evaluate.job.js';
import { ensureParams, saveDays } from '../../alcohol/alcohol.repo.js';
import type { DayStatus } from '../../alcohol/days.js';

/**
 * The data of the oversight tests (HTTP and browser): people with distinctive names, ids and
 * coordinates (so a leak is found by plain search), an alcohol tag with two real drinking events
 * (from readings, through the evaluate job), escalated and acknowledged alerts for the fatigue
 * figures, and three cohorts' days over September to November 2026 for the analyst.
 */
export const NAMES = ['Quentin Zephyrine', 'Ottilie Marchbanks', 'Barnaby Quillfeather', 'Henrietta Voss'];
export const SUBJECT_IDS = ['OVS-S1', 'OVS-S2', 'OVS-S3', 'OVS-S4'];
/** GPS fixes stored for OVS-S1 (a page that leaked a location would carry one of these) */
export const COORDS = [{ lat: 53.481237, lon: -2.244561 }, { lat: 53.481911, lon: -2.245077 }];

const H = 3600_000;
const DAY0 = Date.parse('2026-11-01T00:00:00Z');
const at = (day: number, hour: number) => DAY0 + (day - 1) * 24 * H + hour * H;

export interface Seeded { escalated: string; acknowledged: string; events: string[] }

async function subject(pool: Pool, id: string, name: string, cohort: string, managers: string[]) {
  await pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $2, $3, 'amber', $4)`, [id, name, cohort, managers]);
}

export async function seedOversight(pool: Pool): Promise<Seeded> {
  await subject(pool, 'OVS-S1', NAMES[0]!, 'fixed', ['om-1']);
  await subject(pool, 'OVS-S2', NAMES[1]!, 'flex', ['om-1', 'om-2']);
  await subject(pool, 'OVS-S3', NAMES[2]!, 'free', ['om-2']);
  await subject(pool, 'OVS-S4', NAMES[3]!, 'flex', ['om-3']);
  await pool.query(`INSERT INTO devices (id, kind) VALUES ('OVS-A1', 'alcohol'), ('OVS-G1', 'gps'), ('OVS-G2', 'gps')`);
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('OVS-S1', 'OVS-A1', $1), ('OVS-S1', 'OVS-G1', $1), ('OVS-S2', 'OVS-G2', $1)`, [new Date(DAY0)]);
  for (const [i, c] of COORDS.entries()) {
    await pool.query(`INSERT INTO readings (device_id, stream, ts, lat, lon, accuracy_m, data) VALUES ('OVS-G1', 'gps', $1, $2, $3, 9, '{}')`, [new Date(at(2, 12) + i * 60_000), c.lat, c.lon]);
  }

  // the alcohol tag: a reading every 30 minutes, drinking on 2 Nov 19:00–22:00 and 3 Nov 20:00–23:00
  const ts: Date[] = [];
  const tac: number[] = [];
  const ir: number[] = [];
  for (let t = DAY0; t <= at(5, 0); t += H / 2) {
    ts.push(new Date(t));
    tac.push((t >= at(2, 19) && t <= at(2, 22)) || (t >= at(3, 20) && t <= at(3, 23)) ? 0.04 + 0.02 * Math.sin(((t - DAY0) / H) % 3) : 0);
    ir.push(1.1);
  }
  await pool.query(
    `INSERT INTO readings (device_id, stream, ts, tac, temp_c, ir, data)
     SELECT 'OVS-A1', 'alcohol', t, tac, 32.5, ir, '{}'::jsonb FROM unnest($1::timestamptz[], $2::float8[], $3::float8[]) AS x(t, tac, ir)`,
    [ts, tac, ir],
  );
  await evaluateDeviceAlcohol({ pool, logger: createLogger('silent'), metrics: createMetrics(), params: DEFAULT_PARAMS }, 'OVS-A1', DAY0, at(5, 0.2));
  const events = (await pool.query<{ id: string }>(`SELECT id FROM alerts WHERE subject_id = 'OVS-S1' AND type = 'drinking_event' ORDER BY started_at`)).rows.map((r) => r.id);

  // alerts for the fatigue figures: one breach escalated and left open, one acknowledged after 10 minutes
  const raise = async (type: 'exclusion_breach' | 'strap_tamper' | 'low_battery', subjectId: string, device: string, minutesAgo: number) => {
    const r = await withTransaction(pool, (tx) => raiseAlert(tx, { type, subjectId, deviceId: device, zoneId: null, startedAt: new Date(Date.now() - minutesAgo * 60_000), late: false, evidence: [] }));
    const id = (r as { alert: { id: string } }).alert.id;
    await pool.query(`UPDATE alerts SET raised_at = now() - make_interval(mins => $2) WHERE id = $1`, [id, minutesAgo]);
    return id;
  };
  const escalated = await raise('exclusion_breach', 'OVS-S2', 'OVS-G2', 95);
  const acknowledged = await raise('strap_tamper', 'OVS-S1', 'OVS-G1', 50);
  await raise('low_battery', 'OVS-S2', 'OVS-G2', 40);
  await transition(pool, { id: 'om-1', role: 'offender_manager' }, acknowledged, 'acknowledged', 'called', null);
  await pool.query(`UPDATE alerts SET acknowledged_at = raised_at + interval '10 minutes' WHERE id = $1`, [acknowledged]);
  // the drinking events are high too: escalate every open high alert raised 15 minutes ago or more
  await escalateOverdue(pool, 15 * 60_000, new Date());

  // the analyst's days: three cohorts, September and October 2026 (November: OVS-S1's real days)
  const version = await ensureParams(pool, DEFAULT_PARAMS);
  const pattern: Record<string, DayStatus[]> = {
    'OVS-S2': ['sober', 'sober', 'drinking', 'sober', 'not_monitored', 'sober'],
    'OVS-S3': ['sober', 'drinking', 'tamper', 'sober', 'sober'],
    'OVS-S4': ['sober', 'sober', 'sober', 'drinking'],
  };
  for (const [id, statuses] of Object.entries(pattern)) {
    const days = [];
    for (let d = Date.parse('2026-09-01T00:00:00Z'); d < Date.parse('2026-11-01T00:00:00Z'); d += 24 * H) {
      const status = statuses[Math.round((d - Date.parse('2026-09-01T00:00:00Z')) / (24 * H)) % statuses.length]!;
      days.push({ date: new Date(d).toISOString().slice(0, 10), status, covered_minutes: status === 'not_monitored' ? 600 : 1440, drinking_events: status === 'drinking' ? 1 : 0, tampers: status === 'tamper' ? 1 : 0, reviewed_status: status === 'tamper' ? 'sober' : status, pending_events: status === 'drinking' ? 1 : 0, events: [], reviews: {} });
    }
    await saveDays(pool, id, days as never, version);
  }
  return { escalated, acknowledged, events };
}

import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { Pool } from '../platform/db.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import { advanceZones, prepareZones } from './evaluate.js';
import { loadRules } from './zones.repo.js';
import { applyFinding, loadStates, lockSubject, saveStates } from './states.repo.js';

export interface CurfewDeps {
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
}

/**
 * The clock's part (scheduled every minute): curfew windows with no fix for 15 minutes, and
 * breaches whose enforcement ended, for every subject with a curfew.
 */
export async function tickCurfews(deps: CurfewDeps, now: number): Promise<AlertRow[]> {
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

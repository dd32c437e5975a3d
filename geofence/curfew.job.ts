import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { withTransaction, type Pool } from '../platform/db.js';
import type { AlertRow } from '../alerts/alerts.repo.js';
import { advanceZones } from './evaluate.js';
import { gpsDeviceFitted, loadRules, subjectsWithCurfews } from './zones.repo.js';
import { zoneCache } from './zone-cache.js';
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
  const subjects = await subjectsWithCurfews(deps.pool);
  const raised: AlertRow[] = [];
  for (const subject_id of subjects) {
    try {
      const mine = await withTransaction(deps.pool, async (tx) => {
        await lockSubject(tx, subject_id);
        const device = await gpsDeviceFitted(tx, subject_id, new Date(now));
        if (!device) return []; // no GPS tag fitted now: nothing to expect fixes from
        const zones = zoneCache.prepare(subject_id, await loadRules(tx, subject_id));
        const ran = advanceZones(zones, await loadStates(tx, subject_id), now);
        const out: AlertRow[] = [];
        for (const f of ran.findings) {
          const alert = await applyFinding(tx, subject_id, device, f, {}, false); // found by the clock: never late
          if (alert) out.push(alert);
        }
        await saveStates(tx, subject_id, ran.states);
        return out;
      });
      for (const alert of mine) deps.metrics.alertsRaised.inc({ type: alert.type });
      raised.push(...mine);
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message, subject: subject_id }, 'curfew tick failed for a subject');
    }
  }
  return raised;
}

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/env.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import type { Pool } from '../../platform/db.js';
import { tickHealth } from '../../health/health.job.js';
import { raiseAlert, type NewAlert } from '../../alerts/alerts.repo.js';
import { applyFinding, writeStates } from '../../geofence/states.repo.js';

// Issue 9, finding 13: an alert and its `raised` event are written together or not at all.
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('T-S1', 'Person T-S1', 'free', 'red', '{om-1}'), ('T-S2', 'Person T-S2', 'free', 'red', '{om-1}')`);
  await db.pool.query(`INSERT INTO devices (id, kind, mqtt_password_hash) VALUES ('T-D1', 'alcohol', 'x'), ('T-D2', 'alcohol', 'x')`);
  await db.pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) VALUES ('T-S1', 'T-D1', now() - interval '2 hours'), ('T-S2', 'T-D2', now() - interval '2 hours')`);
  // a fault between raiseAlert's two statements: the `raised` event of T-S1's alerts fails (DDL: as the owner)
  const owner = new pg.Client({ connectionString: db.ownerUrl });
  await owner.connect();
  await owner.query(`
    CREATE FUNCTION fail_raised_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.action = 'raised' AND (SELECT subject_id FROM alerts WHERE id = NEW.alert_id) = 'T-S1' THEN
        RAISE EXCEPTION 'injected fault before the raised event';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER fail_raised_event BEFORE INSERT ON alert_events FOR EACH ROW EXECUTE FUNCTION fail_raised_event();`);
  await owner.end();
});

afterAll(async () => {
  await db?.drop();
});

const deps = () => ({ pool: db.pool, logger: createLogger('silent'), metrics: createMetrics() });
const orphans = async () =>
  (await db.pool.query(`SELECT a.subject_id, a.type FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM alert_events e WHERE e.alert_id = a.id AND e.action = 'raised')`)).rows;

describe('alerts are raised in a transaction', () => {
  it('leaves no alert without its raised event when the second statement fails, and the next tick raises it', async () => {
    const now = Date.now();
    const first = await tickHealth(deps(), now, 15 * 60_000).catch((err: Error) => ({ error: err.message }));
    expect(await orphans()).toEqual([]);
    // the failure of one subject does not hold back another's alert
    expect((await db.pool.query(`SELECT subject_id, type FROM alerts ORDER BY subject_id`)).rows).toEqual([{ subject_id: 'T-S2', type: 'no_signal' }]);
    expect(first).toMatchObject({ failed: ['T-D1'] });
    const owner = new pg.Client({ connectionString: db.ownerUrl });
    await owner.connect();
    await owner.query(`DROP TRIGGER fail_raised_event ON alert_events`);
    await owner.end();
    const next = await tickHealth(deps(), now + 60_000, 15 * 60_000);
    expect(next.raised.map((a) => [a.subject_id, a.type])).toEqual([['T-S1', 'no_signal']]);
    const events = await db.pool.query(`SELECT e.action FROM alert_events e JOIN alerts a ON a.id = e.alert_id WHERE a.subject_id = 'T-S1'`);
    expect(events.rows).toEqual([{ action: 'raised' }]);
    expect(await orphans()).toEqual([]);
  });
});

// Compile-time checks (npm test runs `tsc --noEmit` over test/): multi-statement writes take a
// transaction client from withTransaction, never a pool. Never called.
export function poolIsNotATransaction(pool: Pool): void {
  const a: NewAlert = { type: 'no_signal', subjectId: 'x', deviceId: null, zoneId: null, startedAt: new Date(), late: false, evidence: [] };
  // @ts-expect-error raiseAlert needs a TxClient
  void raiseAlert(pool, a);
  // @ts-expect-error applyFinding needs a TxClient
  void applyFinding(pool, 'x', null, { kind: 'breach_end', type: 'exclusion_breach', zoneId: 'z', startedAt: 0, endedAt: 0 }, false, false);
  // @ts-expect-error writeStates needs a TxClient
  void writeStates(pool, [], new Map());
}

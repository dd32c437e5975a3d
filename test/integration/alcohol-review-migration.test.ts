import type { TxClient } from '../../platform/db.js';
import { readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { migrate, MIGRATIONS_DIR } from '../../platform/db.js';
import { rollupDrift } from '../../alcohol/alcohol.repo.js';
import { reviewInTransaction } from '../../alcohol/review.js';
import { stack } from '../support/env.js';

// Migration 20261203000000070 on data written before alcohol review: a database migrated up to
// the migration before it, given alerts and day results the old code wrote, then migrated on.

const MIGRATION = '20261203000000070_alcohol_review.sql';
// the superuser: a database migrated as its owner from nothing
const base = () => stack().PG_SUPERUSER_URL.replace(/\/[^/]+$/, '');
const name = `m_${randomBytes(6).toString('hex')}`;
let c: pg.Client;

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: `${base()}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  c = new pg.Client({ connectionString: `${base()}/${name}` });
  await c.connect();
  const before = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql') && f < MIGRATION).length;
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  await runner({ dbClient: c, dir: MIGRATIONS_DIR, direction: 'up', migrationsTable: 'pgmigrations', count: before, checkOrder: true, log: () => {}, logger: quiet });
});

afterAll(async () => {
  await c?.end();
  const admin = new pg.Client({ connectionString: `${base()}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('migration 20261203000000070 (alcohol review) on existing data', () => {
  it('splits recorded recurrences into their own alerts, marks every alcohol alert pending and keeps the figures', async () => {
    await c.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('M-S1', 'Person M', 'free', 'amber', '{om-1}')`);
    await c.query(`INSERT INTO alcohol_params (version, params) VALUES ('v-old', '{"monitored_min_hours": 20}')`);
    const alert = async (type: string, start: string, end: string | null, recurred: string[]) => {
      const id = (await c.query(`INSERT INTO alerts (type, severity, subject_id, device_id, started_at, ended_at, evidence) VALUES ($1, 'high', 'M-S1', 'M-D1', $2, $3, '[]') RETURNING id`, [type, start, end])).rows[0].id as string;
      await c.query(`INSERT INTO alert_events (alert_id, actor, action) VALUES ($1, 'system', 'raised')`, [id]);
      for (const note of recurred) await c.query(`INSERT INTO alert_events (alert_id, actor, action, note) VALUES ($1, 'system', 'recurred', $2)`, [id, note]);
      return id;
    };
    const drinking = await alert('drinking_event', '2026-11-02T19:00:00Z', '2026-11-02T22:00:00Z', ['recurred: started 2026-11-04T19:00:00.000Z (late readings)']);
    await alert('curfew_breach', '2026-11-03T20:00:00Z', null, ['recurred: started 2026-11-04T20:00:00.000Z']);
    const days: Array<[string, string]> = [['2026-11-01', 'sober'], ['2026-11-02', 'drinking'], ['2026-11-03', 'sober'], ['2026-11-04', 'drinking'], ['2026-11-05', 'sober']];
    for (const [date, status] of days) {
      await c.query(`INSERT INTO alcohol_days (subject_id, date, status, covered_minutes, drinking_events, tampers, params_version) VALUES ('M-S1', $1, $2, 1440, $3, 0, 'v-old')`, [date, status, status === 'drinking' ? 1 : 0]);
    }
    await c.query(`INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days) VALUES ('M-S1', '2026-11-01', 3, 2, 0, 0)`);

    await migrate(c);

    const alerts = await c.query(`SELECT id, type, started_at, late, per_event, review_status, status, evidence FROM alerts ORDER BY type, started_at`);
    expect(alerts.rows.map((a) => [a.type, a.started_at.toISOString(), a.late, a.per_event, a.review_status])).toEqual([
      ['curfew_breach', '2026-11-03T20:00:00.000Z', false, false, null],
      ['drinking_event', '2026-11-02T19:00:00.000Z', false, true, 'pending'],
      ['drinking_event', '2026-11-04T19:00:00.000Z', true, true, 'pending'],
    ]);
    const split = alerts.rows[2];
    expect(split.evidence).toEqual([{ summary: { split_from: drinking, start: '2026-11-04T19:00:00+00:00' } }]);
    const history = await c.query(`SELECT action, note FROM alert_events WHERE alert_id = $1`, [split.id]);
    expect(history.rows).toEqual([{ action: 'split', note: `recorded as a recurrence of alert ${drinking} before each event was its own alert` }]);

    const stored = await c.query(`SELECT to_char(date, 'YYYY-MM-DD') d, status, reviewed_status, pending_events, events FROM alcohol_days ORDER BY date`);
    expect(stored.rows.map((r) => [r.d, r.status, r.reviewed_status, r.pending_events])).toEqual(days.map(([d, s]) => [d, s, s, s === 'drinking' ? 1 : 0]));
    expect(stored.rows[1].events).toEqual([{ kind: 'drinking', start: Date.parse('2026-11-02T19:00:00Z'), end: Date.parse('2026-11-02T22:00:00Z') }]);
    expect(stored.rows[0].events).toBeNull();
    expect(await rollupDrift(c)).toEqual([]);

    // the migrated alerts are reviewed like new ones: the split event not confirmed turns its day sober
    await c.query('BEGIN');
    const r = await reviewInTransaction(c as unknown as TxClient, { id: 'sup-1', role: 'supervisor' }, split.id, 'not_confirmed', 'the tag was on the charger');
    await c.query('COMMIT');
    expect(r.ok).toBe(true);
    const after = await c.query(`SELECT reviewed_status, pending_events, reviews FROM alcohol_days WHERE date = '2026-11-04'`);
    expect(after.rows[0]).toEqual({ reviewed_status: 'sober', pending_events: 0, reviews: { [split.id]: 'not_confirmed' } });
    expect(await rollupDrift(c)).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase } from '../support/env.js';

// The service runs as the runtime role (DATABASE_URL) and the schema belongs to the owner role
// (MIGRATION_DATABASE_URL): the audit log is append-only against the service itself because the
// runtime role holds INSERT and SELECT on it and nothing else, not because of a trigger alone.

let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

/** Runs `sql` on a runtime connection inside a transaction that is always rolled back; the error, if any. */
async function attempt(sql: string): Promise<{ code?: string; message: string } | null> {
  const c = await db.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(sql);
    return null;
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    c.release();
  }
}

describe('database roles', () => {
  it('runs the test service as a role that is not the owner of the schema', async () => {
    const r = await db.pool.query(
      `SELECT current_user AS me, pg_get_userbyid(c.relowner) AS owner, r.rolsuper AS super
         FROM pg_class c, pg_roles r WHERE c.relname = 'audit_log' AND r.rolname = current_user`,
    );
    expect(r.rows[0].super).toBe(false);
    expect(r.rows[0].me).not.toBe(r.rows[0].owner);
  });

  it('lets the runtime role INSERT into and SELECT from audit_log', async () => {
    await db.pool.query(`INSERT INTO audit_log (actor, role, action) VALUES ('t', 'admin', 'roles.test')`);
    const r = await db.pool.query(`SELECT count(*)::int n FROM audit_log WHERE action = 'roles.test'`);
    expect(r.rows[0].n).toBe(1);
  });

  it.each([
    ['TRUNCATE', 'TRUNCATE audit_log'],
    ['DELETE', 'DELETE FROM audit_log'],
    ['UPDATE', `UPDATE audit_log SET actor = 'someone-else'`],
    ['ALTER (disable the trigger)', 'ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change'],
    ['ALTER (owner)', 'ALTER TABLE audit_log OWNER TO CURRENT_USER'],
    ['DROP', 'DROP TABLE audit_log'],
  ])('refuses %s on audit_log to the runtime role with permission denied', async (_what, sql) => {
    const err = await attempt(sql);
    expect(err, sql).not.toBeNull();
    expect(err!.code, err!.message).toBe('42501'); // insufficient_privilege
  });

  it('refuses DDL in the schema to the runtime role, and keeps its rights on the other tables', async () => {
    expect((await attempt('CREATE TABLE sneaky (x int)'))?.code).toBe('42501');
    expect((await attempt('ALTER TABLE readings ADD COLUMN x int'))?.code).toBe('42501');
    expect(await attempt(`INSERT INTO devices (id, kind) VALUES ('ROLE-D1', 'gps')`)).toBeNull();
    expect(await attempt(`UPDATE alerts SET status = 'open' WHERE false`)).toBeNull();
    expect(await attempt(`DELETE FROM readings WHERE false`)).toBeNull();
    expect(await attempt(`SELECT * FROM sober_days`)).toBeNull();
  });

  it('keeps TRUNCATE away from the owner too (a statement trigger), and lets it purge only old rows', async () => {
    const owner = new pg.Client({ connectionString: db.ownerUrl });
    await owner.connect();
    try {
      await expect(owner.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
      await expect(owner.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
    } finally {
      await owner.end();
    }
  });
});

import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, stack } from '../support/env.js';

/**
 * A database failover (Patroni promoting the standby, HAProxy cutting the sessions to the old
 * primary) terminates connections the service holds in a transaction between two statements.
 * Before: pg's client emitted 'error' with no listener while checked out of the pool, and the
 * whole process died ("Connection terminated unexpectedly"). Now the transaction fails, the
 * dead client leaves the pool and the next query gets a new connection.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('a pooled connection lost inside a transaction', () => {
  it('fails that transaction and keeps the process and the pool alive', () => {
    const out = execFileSync('node_modules/.bin/tsx', ['test/fixtures/db/held-client.ts'], {
      env: { ...process.env, DATABASE_URL: db.url, PG_SUPERUSER_URL: stack().PG_SUPERUSER_URL },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    const result = JSON.parse(out.trim().split('\n').pop()!) as { outcome: string; after: number };
    expect(result.outcome).toMatch(/^rejected: /);
    expect(result.after).toBe(1);
  });
});

import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../platform/db.js';
import { stackUpHa } from '../../scripts/stack.js';
import { OWNER_ROLE } from '../../scripts/stack/services.js';
import { connectThroughHaproxy } from '../../scripts/stack/ha.js';
import { TEMPLATE_DB, withDatabase } from './global-setup.js';

/**
 * Global set-up of `npm run test:ha`: the HA stack up (idempotent), and a migrated template
 * database in its Patroni cluster (made through HAProxy on the primary, replicated to the
 * standby), which test/support/env.ts copies as the ordinary set-up's.
 */
export default async function setup(project: TestProject) {
  const env = await stackUpHa(() => undefined);
  const admin = await connectThroughHaproxy(env.PG_SUPERUSER_URL, 60_000);
  await admin.query(`UPDATE pg_database SET datistemplate = false WHERE datname = '${TEMPLATE_DB}'`);
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB} OWNER ${OWNER_ROLE}`);
  const c = new pg.Client({ connectionString: withDatabase(env.MIGRATION_DATABASE_URL, TEMPLATE_DB) });
  await c.connect();
  await migrate(c);
  await c.end();
  await admin.query(`UPDATE pg_database SET datistemplate = true WHERE datname = '${TEMPLATE_DB}'`);
  await admin.end();
  project.provide('stack', env);
  project.provide('templateDb', TEMPLATE_DB);
}

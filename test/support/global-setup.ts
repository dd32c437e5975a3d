import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../platform/db.js';
import { stackUp, type StackEnv } from '../../scripts/stack.js';
import { OWNER_ROLE } from '../../scripts/stack/services.js';
import { bundle } from '../../scripts/bundle.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEnv;
    templateDb: string;
  }
}

export const TEMPLATE_DB = 'tagwatch_template';

/** The same server and role, another database. */
export function withDatabase(url: string, db: string): string {
  return url.replace(/\/[^/?]+(\?.*)?$/, `/${db}`);
}

/** Starts the real services once (idempotent) and migrates a template database the test files copy. */
export default async function setup(project: TestProject) {
  await bundle(); // the console's browser scripts (served from console/public/js)
  const env = await stackUp(() => undefined);
  // created by the superuser, owned and migrated by the owner role; the tests run the service as
  // the runtime role (test/support/env.ts createTestDatabase)
  const admin = new pg.Client({ connectionString: env.PG_SUPERUSER_URL });
  await admin.connect();
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

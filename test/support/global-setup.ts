import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../platform/db.js';
import { stackUp, type StackEnv } from '../../scripts/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEnv;
    templateDb: string;
  }
}

export const TEMPLATE_DB = 'tagwatch_template';

/** Starts the real services once (idempotent) and migrates a template database the test files copy. */
export default async function setup(project: TestProject) {
  const env = await stackUp(() => undefined);
  const admin = new pg.Client({ connectionString: env.DATABASE_URL.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  await admin.query(`UPDATE pg_database SET datistemplate = false WHERE datname = '${TEMPLATE_DB}'`);
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  const c = new pg.Client({ connectionString: env.DATABASE_URL.replace(/\/[^/]+$/, `/${TEMPLATE_DB}`) });
  await c.connect();
  await migrate(c);
  await c.end();
  await admin.query(`UPDATE pg_database SET datistemplate = true WHERE datname = '${TEMPLATE_DB}'`);
  await admin.end();
  project.provide('stack', env);
  project.provide('templateDb', TEMPLATE_DB);
}

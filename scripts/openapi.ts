import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../app/app.js';
import { createPool } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';

/**
 * The OpenAPI document of the HTTP API, as the service itself serves it (/docs/json), built
 * from buildApp without any backing service (the pool never connects).
 * `tsx scripts/openapi.ts [out.json]` writes it (stdout without a file). Used by
 * `npm run openapi:lint` and `npm run client:generate` (client/schema.d.ts).
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const pool = createPool('postgres://unused@127.0.0.1:1/unused', 1);
  const app = await buildApp({
    pool,
    logger: createLogger('silent'),
    metrics: createMetrics(),
    verifyToken: async () => {
      throw new Error('no tokens here');
    },
    readiness: async () => ({}),
  });
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  await pool.end();
  return doc;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = JSON.stringify(await openApiDocument(), null, 2) + '\n';
  if (process.argv[2]) writeFileSync(process.argv[2], text);
  else process.stdout.write(text);
}

import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../scripts/stack.js';
import { openApiDocument } from '../../scripts/openapi.js';
import { generateClientTypes, SCHEMA_FILE } from '../../scripts/client.js';

/**
 * The OpenAPI document that buildApp serves: clean under `redocly lint` (recommended rules, no
 * errors, no warnings), every error response a problem details object, and the typed client's
 * types (client/schema.d.ts) generated from exactly this document.
 */

describe('the OpenAPI document', () => {
  it('passes redocly lint with the recommended rules: no errors, no warnings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tagwatch-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(await openApiDocument(), null, 2));
      const r = spawnSync(join(ROOT, 'node_modules/.bin/redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json'], {
        encoding: 'utf8',
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
        timeout: 120_000,
      });
      const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }> };
      const lines = report.problems.map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
      expect(lines).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('documents every error response as problem details, and every operation with an id and a summary', async () => {
    const doc = (await openApiDocument()) as { paths: Record<string, Record<string, { operationId?: string; summary?: string; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>> };
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.operationId, where).toBeTruthy();
        expect(op.summary, where).toBeTruthy();
        expect(ids.has(op.operationId!), `${where}: operationId ${op.operationId} is used twice`).toBe(false);
        ids.add(op.operationId!);
        const errors = Object.entries(op.responses).filter(([code]) => /^[45]/.test(code));
        expect(errors.length, where).toBeGreaterThan(0);
        for (const [code, response] of errors) {
          expect(Object.keys(response.content ?? {}), `${where} ${code}`).toEqual(['application/problem+json']);
          expect(response.content!['application/problem+json']!.schema.$ref, `${where} ${code}`).toBe('#/components/schemas/Problem');
        }
      }
    }
  });

  it('is what the typed client (client/schema.d.ts) was generated from: regenerate with npm run client:generate', async () => {
    const fresh = await generateClientTypes();
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    expect(committed === fresh, 'client/schema.d.ts differs from the document: run npm run client:generate and commit it').toBe(true);
  }, 60_000);
});

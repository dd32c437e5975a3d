import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { rollbackWith, withTransaction, type Pool } from '../platform/db.js';
import { audit } from './audit.repo.js';
import { problem } from '../platform/http/problem.js';
import { requireReason } from '../platform/http/reason.js';
import { RefId } from '../platform/http/schemas.js';
import type { BrokerAdmin } from './dynsec.js';
import { eraseSubject } from './erasure.repo.js';
import { exportSubject } from './export.js';

// error answers (problem details) are documented for every route by platform/http/openapi.ts

/** A data subject's rights, on an admin's instruction: erasure and the subject access export. */
export function subjectDataRoutes(pool: Pool, broker: BrokerAdmin | null): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.delete(
      '/v1/subjects/:id',
      {
        config: { roles: ['admin'] },
        schema: {
          tags: ['subjects'],
          operationId: 'eraseSubject',
          summary: 'Erase a subject on instruction: readings, rejections, alerts and their deliveries, zones, day results, assignments; deactivates its devices (the erasure itself is audited)',
          params: Type.Object({ id: RefId }),
          body: Type.Object({ reason: Type.String({ minLength: 3, maxLength: 500 }) }, { additionalProperties: false }),
          response: {
            200: Type.Object({
              erased: Type.String(),
              readings: Type.Integer(),
              rejections: Type.Integer(),
              alerts: Type.Integer(),
              zones: Type.Integer(),
              devices_deactivated: Type.Array(Type.String()),
            }),
          },
        },
      },
      async (request, reply) => {
        if (requireReason(request, reply, request.body.reason) === null) return reply; // the audit row's reason column too
        const result = await withTransaction(pool, async (tx) => {
          const s = await tx.query(`SELECT id FROM subjects WHERE id = $1 FOR UPDATE`, [request.params.id]);
          if (!s.rowCount) return rollbackWith(null);
          const erased = await eraseSubject(tx, request.params.id);
          await audit(tx, request, { action: 'subject.erase', subjectId: request.params.id, detail: { reason: request.body.reason, ...erased } });
          return erased;
        });
        if (!result) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        // the devices can no longer connect (ingest refuses an inactive device's telemetry anyway)
        for (const d of result.devices) {
          await broker?.setDeviceEnabled(d, false).catch((err: Error) => request.log.warn({ device: d, err: err.message }, 'broker: device not disabled'));
        }
        const { devices, ...counts } = result;
        return { erased: request.params.id, ...counts, devices_deactivated: devices };
      },
    );

    app.get(
      '/v1/subjects/:id/export',
      {
        config: { roles: ['admin'] },
        schema: {
          tags: ['subjects'],
          operationId: 'exportSubject',
          summary: 'Subject access export: everything held about a subject (readings, rejections, alerts with history, zones, day results, audit rows) as a zip of JSON and CSV files, streamed',
          params: Type.Object({ id: RefId }),
          response: {
            200: { description: 'a zip archive (manifest.json lists its files)', content: { 'application/zip': { schema: { type: 'string', format: 'binary' } } } },
          },
        },
      },
      async (request, reply) => {
        const id = request.params.id;
        const s = await pool.query(`SELECT id FROM subjects WHERE id = $1`, [id]);
        if (!s.rowCount) return problem(reply, 404, 'Not Found', `subject ${id} not found`);
        // audited before any byte leaves, and before the snapshot: the archive shows its own row
        await audit(pool, request, { action: 'subject.export', subjectId: id });
        const client = await pool.connect();
        let released = false;
        const release = (err?: Error) => {
          if (released) return;
          released = true;
          void client.query(err ? 'ROLLBACK' : 'COMMIT').catch(() => undefined).finally(() => client.release(err));
        };
        try {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        } catch (err) {
          release(err as Error);
          throw err;
        }
        const now = new Date();
        const { archive, done } = exportSubject(client, id, now);
        done.then(() => release(), (err: Error) => {
          request.log.error({ err: err.message, subject_id: id }, 'subject export failed');
          release(err);
        });
        // a client that goes away stops the export and frees the connection
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) archive.destroy();
        });
        return reply
          .type('application/zip')
          .header('content-disposition', `attachment; filename="subject-${id}-${now.toISOString().slice(0, 10)}.zip"`)
          .header('cache-control', 'no-store')
          .send(archive as never);
      },
    );
  };
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Queue } from 'bullmq';
import { withTransaction, type Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { audit } from '../registry/audit.repo.js';
import { parseCrimeCsv, parseCrimeJson, type CrimeFields, type ParsedBatch, type RowError } from './batch.js';
import { getBatch, insertBatch, insertRun } from './crime.repo.js';
import { enqueueRun, type CrimeJob } from './match.job.js';
import { crimeParamsVersion } from './rules.js';
import { JsonBatch, ParamsOverride, paramsWith, problems, ServiceId } from './schemas.js';
import { resultsCsv } from './export.js';

/** bytes: the largest batch accepted (a night's batch from every force; the API's default is 1 MiB) */
export const CRIME_BATCH_LIMIT = 20 * 1024 * 1024;

export interface CrimeRoutesDeps {
  pool: Pool;
  /** the matching queue; null: runs stay `queued` until the worker's maintenance tick queues them */
  queue: Queue<CrimeJob> | null;
  logger: Logger;
}

const Id = Type.Object({ id: ServiceId });

export interface UploadedBatch {
  id: string;
  police_batch_id: string;
  run_id: string;
  accepted: number;
  rejected: number;
  errors: RowError[];
}
export type UploadOutcome = { ok: true; batch: UploadedBatch } | { ok: false; status: 400 | 409 | 422; title: string; detail: string; errors?: RowError[] };

/**
 * An upload (the API's POST /v1/crime-batches and the console's upload form): the body as CSV
 * bytes or `{rows}`; each row checked alone; the batch, its crimes, its first run and the audit
 * row in one transaction (nothing stored when refused); then the run is queued.
 */
export async function uploadBatch(deps: CrimeRoutesDeps, request: FastifyRequest, body: unknown): Promise<UploadOutcome> {
  const { pool } = deps;
  const now = Date.now();
  let parsed: ParsedBatch;
  if (Buffer.isBuffer(body)) {
    if (body.includes(0)) return { ok: false, status: 400, title: 'Bad Request', detail: 'the file holds NUL bytes: not a text CSV' };
    parsed = parseCrimeCsv(body, now);
  } else parsed = parseCrimeJson((body as { rows: CrimeFields[] }).rows, now);
  if (!parsed.ok) return { ok: false, status: 400, title: 'Bad Request', detail: parsed.reason };
  const { rows, errors } = parsed;
  if (rows.length === 0) return { ok: false, status: 422, title: 'Unprocessable Content', detail: 'no row of the batch is valid; nothing was stored', errors };
  const user = userOf(request);
  const first = rows[0]!;
  const stored = await withTransaction(pool, async (c) => {
    const b = await insertBatch(c, { batchId: first.batch_id, force: first.force, by: user.id, rows, errors, rowsTotal: rows.length + errors.length, params: paramsWith(undefined) });
    if (!b) return null;
    await audit(c, request, { action: 'crime.batch.upload', detail: { batch_id: b.id, police_batch_id: first.batch_id, crimes: rows.length, crime_refs: rows.map((r) => r.crime_ref) } });
    return b;
  });
  if (!stored) return { ok: false, status: 409, title: 'Conflict', detail: `police batch ${first.batch_id} was uploaded before: re-run it with POST /v1/crime-batches/{id}/rerun` };
  if (deps.queue) await enqueueRun(deps.queue, stored.runId).catch((err: Error) => deps.logger.warn({ run: stored.runId, err: err.message }, 'crime run not queued; the maintenance tick will'));
  return { ok: true, batch: { id: stored.id, police_batch_id: first.batch_id, run_id: stored.runId, accepted: rows.length, rejected: errors.length, errors } };
}

/** Crime batches: upload, progress, re-run and the results export (contract §8). */
export function crimeBatchRoutes(deps: CrimeRoutesDeps): FastifyPluginAsyncTypebox {
  const { pool } = deps;
  const enqueue = (runId: string) =>
    deps.queue ? enqueueRun(deps.queue, runId).catch((err: Error) => deps.logger.warn({ run: runId, err: err.message }, 'crime run not queued; the maintenance tick will')) : Promise.resolve();
  return async (app) => {
    // the CSV body as bytes: its encoding is checked by the batch parser, not assumed
    app.addContentTypeParser('text/csv', { parseAs: 'buffer', bodyLimit: CRIME_BATCH_LIMIT }, (_req, body, done) => done(null, body));

    app.post(
      '/v1/crime-batches',
      {
        bodyLimit: CRIME_BATCH_LIMIT,
        config: { roles: ['crime_analyst'] },
        schema: {
          tags: ['crime'],
          operationId: 'uploadCrimeBatch',
          summary: 'Upload a police crime batch (13-column CSV of contract §8, or the same fields as JSON); each row is checked alone, the good rows are matched',
          body: {
            content: {
              'text/csv': { schema: Type.Unsafe({ description: 'UTF-8, no header row, 13 columns (contract §8), at most 20 MiB' }) },
              'application/json': { schema: JsonBatch },
            },
          } as never,
          response: problems(400, 401, 403, 409, 413, 415, 422),
        },
      },
      async (request, reply) => {
        const out = await uploadBatch(deps, request, request.body as unknown);
        if (!out.ok) return problem(reply, out.status, out.title, out.detail, out.errors ? { errors: out.errors } : undefined);
        return reply.code(201).send(out.batch);
      },
    );

    app.get(
      '/v1/crime-batches/:id',
      {
        config: { roles: ['crime_analyst', 'supervisor'] },
        schema: {
          tags: ['crime'],
          operationId: 'getCrimeBatch',
          summary: 'A crime batch: its row errors and its runs with progress (crimes_done of crimes_total), parameters and the latest receipt time of the readings used',
          params: Id,
          response: problems(400, 401, 403, 404),
        },
      },
      async (request, reply) => {
        const b = await getBatch(pool, request.params.id);
        if (!b) return problem(reply, 404, 'Not Found', `crime batch ${request.params.id} not found`);
        await audit(pool, request, { action: 'crime.batch.read', detail: { batch_id: b.id, police_batch_id: b.police_batch_id } });
        const crimes = await pool.query<{ id: string; crime_ref: string }>(`SELECT id::text, crime_ref FROM crimes WHERE batch_id = $1 ORDER BY row_no`, [b.id]);
        return {
          ...b,
          crime_ids: crimes.rows,
          runs: b.runs.map((r) => ({
            id: r.id,
            status: r.status,
            params: r.params,
            params_version: r.params_version,
            crimes_done: r.crimes_done,
            crimes_total: r.crimes_total,
            readings_received_max: r.readings_received_max,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
          })),
        };
      },
    );

    app.post(
      '/v1/crime-batches/:id/rerun',
      {
        config: { roles: ['crime_analyst'] },
        schema: {
          tags: ['crime'],
          operationId: 'rerunCrimeBatch',
          summary: 'Match a batch again, optionally with other parameters (R, V, G); every run keeps its own results',
          params: Id,
          body: Type.Optional(Type.Object({ params: Type.Optional(ParamsOverride) }, { additionalProperties: false })),
          response: problems(400, 401, 403, 404),
        },
      },
      async (request, reply) => {
        const b = await getBatch(pool, request.params.id);
        if (!b) return problem(reply, 404, 'Not Found', `crime batch ${request.params.id} not found`);
        const params = paramsWith(request.body?.params);
        const user = userOf(request);
        const runId = await withTransaction(pool, async (c) => {
          const id = await insertRun(c, b.id, params, user.id, b.crimes);
          await audit(c, request, { action: 'crime.batch.rerun', detail: { batch_id: b.id, police_batch_id: b.police_batch_id, run_id: id, params } });
          return id;
        });
        await enqueue(runId);
        return reply.code(202).send({ batch_id: b.id, run_id: runId, params, params_version: crimeParamsVersion(params), status: 'queued' });
      },
    );

    app.get(
      '/v1/crime-batches/:id/results.csv',
      {
        config: { roles: ['crime_analyst'] },
        schema: {
          tags: ['crime'],
          operationId: 'exportCrimeResults',
          summary: 'The placed and possible subjects of every crime of a batch as CSV (latest finished run, or `run_id`); text cells are escaped against formula injection',
          params: Id,
          querystring: Type.Object({ run_id: Type.Optional(ServiceId) }, { additionalProperties: false }),
          response: problems(400, 401, 403, 404),
        },
      },
      async (request, reply) => {
        const out = await resultsCsv(pool, request.params.id, request.query.run_id ?? null);
        if (!out.ok) return problem(reply, 404, 'Not Found', out.detail);
        await audit(pool, request, { action: 'crime.results.export', detail: { batch_id: request.params.id, run_id: out.runId, rows: out.rows, crime_refs: out.crimeRefs, subjects: out.subjects } });
        return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="crime-batch-${request.params.id}-run-${out.runId}.csv"`).send(out.csv);
      },
    );
  };
}

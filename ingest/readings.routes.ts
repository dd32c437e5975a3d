import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { subjectFixes } from './readings.repo.js';

const DateTime = Type.String({ format: 'date-time' });
const OPTIONAL_GPS_FIELDS = ['speed_mps', 'heading_deg', 'fix', 'sats'];

export interface RejectionQuery {
  limit: number;
  /** cursor: rejections with a smaller id */
  before?: string;
  device_id?: string;
  /** the reason starts with this (e.g. `invalid`, `unknown_device`) */
  reason?: string;
}

/** GET /v1/rejections' query (the console's filter form is checked against it too). */
export const RejectionQuerySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'cursor: the next_before of the previous page' })),
    device_id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'only rejections whose reason starts with this' })),
  },
  { additionalProperties: false },
);

/** Rejected telemetry, newest first (the API and the console; the read is audited). */
export async function listRejections(pool: Pool, request: FastifyRequest, q: RejectionQuery) {
  const r = await pool.query<{ id: string; received_at: Date; topic: string; device_id: string | null; item_index: number | null; reason: string; raw: Buffer }>(
    `SELECT id::text, received_at, topic, device_id, item_index, reason, raw FROM rejections
      WHERE ($1::bigint IS NULL OR id < $1::bigint) AND ($2::text IS NULL OR device_id = $2)
        AND ($4::text IS NULL OR starts_with(reason, $4))
      ORDER BY rejections.id DESC LIMIT $3`,
    [q.before ?? null, q.device_id ?? null, q.limit, q.reason ?? null],
  );
  await audit(pool, request, { action: 'rejections.read', detail: { count: r.rows.length, ...(q.device_id ? { device_id: q.device_id } : {}), ...(q.reason ? { reason: q.reason } : {}) } });
  const items = r.rows.map((row) => ({
    id: row.id,
    received_at: row.received_at.toISOString(),
    topic: row.topic,
    device_id: row.device_id,
    item_index: row.item_index,
    reason: row.reason,
    raw: row.raw.toString('utf8'),
    raw_bytes: row.raw.length,
  }));
  return { items, next_before: items.length === q.limit ? items[items.length - 1]!.id : null };
}

/** A subject's GPS track and the rejected telemetry (contract §6). */
export function readingsRoutes(pool: Pool): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/v1/subjects/:id/track',
      {
        config: { roles: ['offender_manager', 'supervisor'], reasonRequired: supervisorReadsOneSubject },
        schema: {
          operationId: 'getTrack',
          tags: ['readings'],
          summary: 'GeoJSON FeatureCollection of the fixes in [from, to), in device-time order',
          params: Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
          querystring: Type.Object(
            { from: DateTime, to: DateTime, limit: Type.Integer({ minimum: 1, maximum: 100000, default: 20000 }) },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) => {
        const { from, to, limit } = request.query;
        const fromD = new Date(from);
        const toD = new Date(to);
        if (!(fromD < toD)) return problem(reply, 400, 'Bad Request', '`from` must be before `to`');
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const fixes = await subjectFixes(pool, subject.id, fromD, toD, limit + 1);
        const truncated = fixes.length > limit;
        const shown = truncated ? fixes.slice(0, limit) : fixes;
        await audit(pool, request, { action: 'track.read', subjectId: subject.id, detail: { from, to, fixes: shown.length } });
        const features = shown.map((f) => {
          const properties: Record<string, unknown> = { ts: f.ts.toISOString(), accuracy_m: f.accuracy_m };
          for (const k of OPTIONAL_GPS_FIELDS) if (f.data[k] !== undefined) properties[k] = f.data[k];
          return { type: 'Feature', geometry: { type: 'Point', coordinates: [f.lon, f.lat] }, properties };
        });
        return reply
          .type('application/geo+json')
          .send({ type: 'FeatureCollection', features, truncated, ...(truncated ? { next_from: shown[shown.length - 1]!.ts.toISOString() } : {}) });
      },
    );

    app.get(
      '/v1/rejections',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'listRejections',
          tags: ['readings'],
          summary: 'Rejected telemetry, newest first, each with its reason',
          querystring: RejectionQuerySchema,
        },
      },
      async (request) => listRejections(pool, request, request.query),
    );
  };
}

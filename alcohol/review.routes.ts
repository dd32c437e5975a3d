import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { withTransaction, type Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf, type Role } from '../platform/http/auth.js';
import { problem, Problem } from '../platform/http/problem.js';
import { getAlertFor } from '../alerts/lifecycle.repo.js';
import { reviewInTransaction } from './review.js';

/** Problem details as a response schema (the shared `Problem` carries an $id registered nowhere). */
const ProblemOut = Type.Object(Problem.properties, { additionalProperties: true, description: 'RFC 9457 problem details' });

/**
 * `POST /v1/alerts/{id}/review` (contract 1.1 §4, §6): the review role (ALCOHOL_REVIEW_ROLE)
 * confirms or rejects a drinking event or alcohol tamper, with a note saying why. An offender
 * manager holding the role reviews only their caseload (others: 404). Audited.
 */
export function reviewRoutes(pool: Pool, reviewRole: Role): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/v1/alerts/:id/review',
      {
        config: { roles: [reviewRole] },
        schema: {
          tags: ['alerts'],
          operationId: 'reviewAlert',
          summary: 'Confirm or reject a drinking event or alcohol tamper (the review role only); a later review replaces the decision, the history keeps both',
          params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
          body: Type.Object(
            {
              decision: Type.Union([Type.Literal('confirmed'), Type.Literal('not_confirmed')]),
              note: Type.String({ minLength: 1, maxLength: 2000, description: 'why: what the reviewer saw in the curve, a lab result, the wearer’s account' }),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({}, { additionalProperties: true, description: 'the alert as the reviewer may see it, with its `review` and history' }), 400: ProblemOut, 401: ProblemOut, 403: ProblemOut, 404: ProblemOut, 409: ProblemOut },
        },
      },
      async (request, reply) => {
        const user = userOf(request);
        const { decision, note } = request.body;
        // the review, the reclassified days and the audit entry commit together
        const r = await withTransaction(pool, async (client) => {
          const out = await reviewInTransaction(client, user, request.params.id, decision, note);
          if (out.ok) await audit(client, request, { action: 'alert.review', subjectId: out.alert.subject_id, detail: { alert_id: out.alert.id, type: out.alert.type, decision } });
          return out;
        });
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        return getAlertFor(pool, user, r.alert.id);
      },
    );
  };
}

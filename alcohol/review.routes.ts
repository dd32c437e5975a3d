import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { withTransaction, type Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf, type Role } from '../platform/http/auth.js';
import { problem, Problem } from '../platform/http/problem.js';
import { getAlertFor } from '../alerts/lifecycle.repo.js';
import type { ReviewResult } from '../alerts/review.repo.js';
import type { ReviewDecision } from '../alerts/rules.js';
import { reviewInTransaction } from './review.js';

/** Problem details as a response schema (the shared `Problem` carries an $id registered nowhere). */
const ProblemOut = Type.Object(Problem.properties, { additionalProperties: true, description: 'RFC 9457 problem details' });

/**
 * Reviews a drinking event or alcohol tamper of the caller's caseload (the API's review route and
 * the console's review page both come here): the review, the reclassified days and the audit
 * entry commit together. The caller's route admits the review role only.
 */
export async function reviewAlert(pool: Pool, request: FastifyRequest, id: string, decision: ReviewDecision, note: string, via?: string): Promise<ReviewResult> {
  return withTransaction(pool, async (client) => {
    const out = await reviewInTransaction(client, userOf(request), id, decision, note);
    if (out.ok) await audit(client, request, { action: 'alert.review', subjectId: out.alert.subject_id, detail: { alert_id: out.alert.id, type: out.alert.type, decision, ...(via ? { via } : {}) } });
    return out;
  });
}

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
        const r = await reviewAlert(pool, request, request.params.id, request.body.decision, request.body.note);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        return getAlertFor(pool, userOf(request), r.alert.id);
      },
    );
  };
}

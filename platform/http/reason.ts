import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem } from './problem.js';

/**
 * Why an access happens (DPA 2018 s.62: the logs must let the lawfulness of each access be
 * checked). Any request may carry a reason in `X-Tagwatch-Reason`; it is stored in the audit
 * row of that request. A route that needs one declares `config.reasonRequired` (a predicate
 * on the authenticated request); code that needs one for a single operation (a crime check,
 * contract §8, where it comes as `?reason=`) calls `requireReason`.
 */
export const REASON_HEADER = 'x-tagwatch-reason';
/** characters, after trimming */
export const REASON_MIN = 3;
export const REASON_MAX = 500;

declare module 'fastify' {
  interface FastifyRequest {
    /** the caller's stated reason for this access, validated, or null */
    reason: string | null;
  }
  interface FastifyContextConfig {
    /** when true for the authenticated request, it must carry a reason (400 otherwise) */
    reasonRequired?: (request: FastifyRequest) => boolean;
  }
}

/** A supervisor reading one subject's personal data: supervisors have no caseload, so every such read needs a reason. */
export const supervisorReadsOneSubject = (request: FastifyRequest): boolean => request.user?.role === 'supervisor';

/**
 * The reason as stored, or why it is refused. A header value is ASCII/Latin-1 on the wire;
 * other text may be sent percent-encoded UTF-8 (`encodeURIComponent`), decoded here.
 */
export function parseReason(raw: string): { reason: string } | { problem: string } {
  let text = raw;
  if (/%[0-9A-Fa-f]{2}/.test(raw)) {
    try {
      text = decodeURIComponent(raw);
    } catch {
      text = raw;
    }
  }
  text = text.trim();
  if (/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(text)) return { problem: 'contains control or format characters' };
  const length = [...text].length;
  if (length < REASON_MIN) return { problem: `is shorter than ${REASON_MIN} characters` };
  if (length > REASON_MAX) return { problem: `is longer than ${REASON_MAX} characters` };
  return { reason: text };
}

const REQUIRED_TEXT = `a reason for this access is required: send it in the X-Tagwatch-Reason header (${REASON_MIN} to ${REASON_MAX} characters, e.g. "escalated alert: MAPPA review"); it is kept in the audit log`;

/** Reads and checks the header on every authenticated request; enforces `config.reasonRequired` once the query is parsed. */
export function registerReasons(app: FastifyInstance): void {
  app.decorateRequest('reason', null);
  app.addHook('onRequest', async (request, reply) => {
    const raw = request.headers[REASON_HEADER];
    if (raw === undefined || !request.user) return;
    const parsed = parseReason(Array.isArray(raw) ? raw.join(', ') : raw);
    if ('problem' in parsed) return problem(reply, 400, 'Bad Request', `X-Tagwatch-Reason ${parsed.problem}`);
    request.reason = parsed.reason;
  });
  app.addHook('preHandler', async (request, reply) => {
    const required = request.routeOptions.config?.reasonRequired;
    if (required && !request.reason && required(request)) return problem(reply, 400, 'Bad Request', REQUIRED_TEXT);
  });
}

/**
 * For code that needs a reason for one operation (crime checks, §8): takes `given` (e.g. the
 * `reason` query parameter) or else the header, validates it, records it on the request (so the
 * audit row carries it) and returns it; or answers 400 and returns null (the caller returns).
 */
export function requireReason(request: FastifyRequest, reply: FastifyReply, given?: string | null): string | null {
  if (given !== undefined && given !== null) {
    const parsed = parseReason(given);
    if ('problem' in parsed) {
      problem(reply, 400, 'Bad Request', `the reason ${parsed.problem}`);
      return null;
    }
    request.reason = parsed.reason;
  }
  if (!request.reason) {
    problem(reply, 400, 'Bad Request', REQUIRED_TEXT);
    return null;
  }
  return request.reason;
}

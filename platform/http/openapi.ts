import type { FastifySchema, RouteOptions } from 'fastify';
import { problemResponse } from './problem.js';

/**
 * The OpenAPI document's error responses. Every route can answer with the problems that the
 * shared request handling produces (validation 400, body limits 413/415, authentication 401,
 * roles 403, rate limit 429, an unknown id 404); this documents them on each route that does
 * not declare them itself. Route-specific problems (409, 503, a 404 without an id in the path)
 * are declared in the route's own schema with problemResponse().
 */
/** Problems particular to an operation, beyond the shared ones (by operationId). */
const OWN_PROBLEMS: Record<string, Record<number, string>> = {
  registerDevice: { 409: 'Conflict: the device is already registered', 503: 'Service Unavailable: the broker could not provision the device; nothing was registered' },
  createSubject: { 409: 'Conflict: the subject already exists' },
  createAssignment: { 409: 'Conflict: the device is assigned over an overlapping period' },
  endAssignment: { 409: 'Conflict: the assignment has ended already, or the end is not after its start' },
  acknowledgeAlert: { 409: 'Conflict: the alert cannot be acknowledged in its current status' },
  resolveAlert: { 409: 'Conflict: the alert cannot be resolved in its current status' },
  streamAlerts: { 503: 'Service Unavailable: the alert feed is not running in this process' },
  deleteNotificationSettings: { 404: 'Not Found: no alert-email address is set' },
};

const TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Content Too Large', 422: 'Unprocessable Content', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Success statuses other than 200 of operations that declare no response schema for them. */
const SUCCESS: Record<string, number> = { createZone: 201, createWebhook: 201, deleteZone: 204, deleteWebhook: 204, deleteNotificationSettings: 204 };

export function documentProblems(route: RouteOptions): void {
  const schema = route.schema as (Record<string, unknown> & { response?: Record<string, unknown> }) | undefined;
  if (!schema || schema.hide) return;
  const response = (schema.response ??= {});
  const add = (status: number, description: string) => {
    if (response[status] === undefined && response[String(status)] === undefined) response[status] = problemResponse(description);
  };
  // an error answer a route declared as a bare schema is problem details too (problem() sends them so)
  for (const [status, declared] of Object.entries(response)) {
    const d = declared as { content?: Record<string, { schema?: { $ref?: string } }>; description?: string } | undefined;
    const shared = d?.content?.['application/problem+json']?.schema?.$ref === 'Problem#';
    if (Number(status) >= 400 && !shared) response[status] = problemResponse(d?.description && d.description !== 'problem details' ? d.description : (TITLES[Number(status)] ?? 'Error'));
  }
  for (const [status, description] of Object.entries(OWN_PROBLEMS[String(schema.operationId)] ?? {})) add(Number(status), description);
  const isPublic = (route.config as { public?: boolean } | undefined)?.public === true;
  if (schema.body || schema.querystring || schema.params) add(400, 'Bad Request: the request does not match its schema');
  if (schema.body) {
    add(413, 'Content Too Large: the body is over 1 MiB');
    add(415, 'Unsupported Media Type: the body is not JSON');
  }
  if (!isPublic) {
    add(401, 'Unauthorized: no valid bearer token');
    add(403, 'Forbidden: the role or the caseload does not allow it');
  }
  add(429, 'Too Many Requests: the rate limit is exceeded');
  if (schema.params) add(404, 'Not Found: no such resource (or not visible to the caller)');
}

type ObjectSchema = { type?: string; required?: string[]; properties?: Record<string, { default?: unknown }> };

/** A body property with a default (filled in by the server) is optional to send. */
function defaultsOptional(body: unknown): unknown {
  const o = body as ObjectSchema | undefined;
  if (!o || o.type !== 'object' || !o.required || !o.properties) return body;
  return { ...o, required: o.required.filter((k) => o.properties![k]?.default === undefined) };
}

/**
 * @fastify/swagger transform (the document only; validation and serialization are unchanged):
 * body properties with defaults are optional to send, and an operation without a declared
 * success response is documented with its success status and no body schema.
 */
export function documentOperation({ schema, url }: { schema: FastifySchema; url: string }): { schema: FastifySchema; url: string } {
  const original = schema as (Record<string, unknown> & { response?: Record<string, unknown> }) | undefined;
  if (!original || original.hide) return { schema, url };
  const s = original.body ? { ...original, body: defaultsOptional(original.body) } : original;
  const response = s.response ?? {};
  if (Object.keys(response).some((code) => code.startsWith('2'))) return { schema: s as FastifySchema, url };
  const status = SUCCESS[String(s.operationId)] ?? 200;
  const description = status === 204 ? 'No Content: done' : status === 201 ? 'Created' : 'OK';
  return { schema: { ...s, response: { ...response, [status]: { description, ...(status === 204 ? { type: 'null' } : {}) } } } as FastifySchema, url };
}

import type { FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';

/** RFC 9457 problem details body. */
export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
  },
  { $id: 'Problem', additionalProperties: true },
);

/** Sends an RFC 9457 problem (application/problem+json). */
export function problem(reply: FastifyReply, status: number, title: string, detail?: string, extra: Record<string, unknown> = {}) {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: 'about:blank', title, status, ...(detail ? { detail } : {}), instance: reply.request.url, ...extra });
}

/** Shared response map of the errors every authenticated route can answer with. */
export const problemResponses = {
  400: Type.Ref(Problem),
  401: Type.Ref(Problem),
  403: Type.Ref(Problem),
  404: Type.Ref(Problem),
} as const;

/** An error response as the OpenAPI document and the serializer see it: RFC 9457 problem details. */
export function problemResponse(description: string) {
  return { description, content: { 'application/problem+json': { schema: Type.Ref(Problem) } } };
}

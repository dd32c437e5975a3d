import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

/**
 * A typed client of the tagwatch HTTP API (openapi-fetch over the types openapi-typescript
 * generates from the service's own OpenAPI document: client/schema.d.ts, `npm run
 * client:generate`). Paths, parameters, bodies and answers are checked by the compiler; an
 * error answer is a problem details object (RFC 9457).
 *
 *   const api = tagwatchClient('http://127.0.0.1:8080', token);
 *   const { data, error, response } = await api.POST('/v1/devices', { body: { id: 'TAG-1', kind: 'gps' } });
 */
export type TagwatchClient = Client<paths>;
export type Problem = components['schemas']['Problem'];
export type { components, paths };

export function tagwatchClient(baseUrl: string, token?: string, fetchImpl?: typeof fetch): TagwatchClient {
  return createClient<paths>({
    baseUrl: baseUrl.replace(/\/$/, ''),
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
}

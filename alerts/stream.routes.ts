import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import type { Config } from '../platform/config.js';
import type { Metrics } from '../platform/metrics.js';
import { userOf } from '../platform/http/auth.js';
import { Problem } from '../platform/http/problem.js';
import type { FeedHub } from './feed.js';
import type { AlertStreams } from './stream.js';

/** The live stream's limits (README configuration: SSE_*). */
export interface StreamSettings {
  maxPerUser: number;
  maxTotal: number;
  /** most events a resumed stream replays */
  replayMax: number;
  /** a resumed stream replays nothing older than this (hours) */
  replayHours: number;
  /** bytes waiting for a slow client above which it is dropped */
  maxBufferBytes: number;
  heartbeatMs: number;
}

export function streamSettings(c: Pick<Config, 'SSE_MAX_PER_USER' | 'SSE_MAX_TOTAL' | 'SSE_REPLAY_MAX' | 'SSE_REPLAY_HOURS' | 'SSE_MAX_BUFFER_BYTES'>): StreamSettings {
  return {
    maxPerUser: c.SSE_MAX_PER_USER,
    maxTotal: c.SSE_MAX_TOTAL,
    replayMax: c.SSE_REPLAY_MAX,
    replayHours: c.SSE_REPLAY_HOURS,
    maxBufferBytes: c.SSE_MAX_BUFFER_BYTES,
    heartbeatMs: 15_000,
  };
}

export const DEFAULT_STREAM_SETTINGS: StreamSettings = { maxPerUser: 5, maxTotal: 2000, replayMax: 1000, replayHours: 24, maxBufferBytes: 1 << 20, heartbeatMs: 15_000 };

export interface StreamRoutesDeps {
  pool: Pool;
  feed: FeedHub | null;
  metrics: Metrics;
  settings: StreamSettings;
}

/**
 * GET /v1/alerts/stream (contract §5, §6): Server-Sent Events of the caller's alerts, with limits
 * (alerts/stream.ts; the console's session-authenticated stream shares `streams`, so one user's
 * streams count against SSE_MAX_PER_USER wherever they are opened). The stream ends when the
 * token expires (`event: expired`) and when the server shuts down.
 */
export function alertStreamRoutes(streams: AlertStreams): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('preClose', async () => streams.closeAll());
    app.get(
      '/v1/alerts/stream',
      {
        config: { roles: ['offender_manager', 'supervisor'] },
        schema: {
          tags: ['alerts'],
          operationId: 'streamAlerts',
          summary: 'Server-Sent Events of alerts as raised and as they change; resumes from Last-Event-ID (bounded: SSE_REPLAY_MAX events, SSE_REPLAY_HOURS hours)',
          querystring: Type.Object({ last_event_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })) }, { additionalProperties: false }),
          response: { 401: Type.Ref(Problem), 403: Type.Ref(Problem), 429: Type.Ref(Problem), 503: Type.Ref(Problem) },
        },
      },
      async (request, reply) => streams.serve(request, reply, { user: userOf(request), resumeFrom: resumePoint(request.headers['last-event-id'], request.query.last_event_id) }),
    );
  };
}

/** The Last-Event-ID header (an EventSource reconnecting) or else the `last_event_id` query parameter. */
export function resumePoint(header: string | string[] | undefined, query: string | undefined): string | null {
  return typeof header === 'string' && /^[0-9]{1,18}$/.test(header) ? header : (query ?? null);
}

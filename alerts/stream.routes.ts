import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import type { Config } from '../platform/config.js';
import type { Metrics } from '../platform/metrics.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { Problem, problem } from '../platform/http/problem.js';
import { feedAfter, replayWindow, visibleTo, type FeedEvent, type FeedHub } from './feed.js';
import { createStreamSlots } from './stream-slots.js';

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

/** Seconds a refused client is told to wait (429 Retry-After). */
const RETRY_AFTER_S = 30;
/** setTimeout's longest delay (about 24.8 days); a later expiry re-arms the timer */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface StreamRoutesDeps {
  pool: Pool;
  feed: FeedHub | null;
  metrics: Metrics;
  settings: StreamSettings;
}

/**
 * GET /v1/alerts/stream (contract §5, §6): Server-Sent Events of the caller's alerts, with limits.
 * Streams per user and in all are capped (429 with Retry-After); a client that stops reading is
 * dropped once SSE_MAX_BUFFER_BYTES wait for it, so memory stays bounded and others are not held
 * up; a resumed replay is bounded in count and age and says so (`event: truncated`); the stream
 * ends when the token expires (`event: expired`) and when the server shuts down.
 */
export function alertStreamRoutes(deps: StreamRoutesDeps): FastifyPluginAsyncTypebox {
  const { pool, metrics, settings } = deps;
  const slots = createStreamSlots(settings.maxPerUser, settings.maxTotal);
  const open = new Set<(reason: 'shutdown') => void>();
  return async (app) => {
    app.addHook('preClose', async () => {
      for (const close of [...open]) close('shutdown');
    });
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
      async (request, reply) => {
        const user = userOf(request);
        const header = request.headers['last-event-id'];
        const resumeFrom = typeof header === 'string' && /^[0-9]{1,18}$/.test(header) ? header : (request.query.last_event_id ?? null);
        const feed = deps.feed;
        if (!feed) return problem(reply, 503, 'Service Unavailable', 'the alert feed is not running in this process');
        const slot = slots.acquire(user.id);
        if (!slot.ok) {
          metrics.sseRefused.inc({ limit: slot.limit });
          const detail =
            slot.limit === 'per_user'
              ? `at most ${settings.maxPerUser} live streams per user: close one (or reuse it) and retry`
              : `the server's ${settings.maxTotal} live streams are in use: retry later`;
          return problem(reply.header('retry-after', String(RETRY_AFTER_S)), 429, 'Too Many Requests', detail);
        }
        let window: { from: string; truncated: boolean } | null = null;
        try {
          await audit(pool, request, { action: 'alerts.stream', detail: { resume_from: resumeFrom } });
          if (resumeFrom !== null) window = await replayWindow(pool, resumeFrom, user, settings.replayMax, new Date(Date.now() - settings.replayHours * 3600_000));
        } catch (err) {
          slot.release();
          throw err;
        }
        reply.hijack();
        const raw = reply.raw;
        metrics.sseStreams.inc();
        raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });

        let closed = false;
        let expiry: NodeJS.Timeout | null = null;
        let heartbeat: NodeJS.Timeout | undefined;
        let unsubscribe: () => void = () => {};
        const cleanup = () => {
          if (closed) return;
          closed = true;
          slot.release();
          metrics.sseStreams.dec();
          open.delete(end);
          clearInterval(heartbeat);
          if (expiry) clearTimeout(expiry);
          unsubscribe();
        };
        /** Ends the stream from our side (a last event may say why). */
        function end(reason: 'slow_client' | 'token_expired' | 'shutdown', last?: string) {
          if (closed) return;
          metrics.sseClosed.inc({ reason });
          if (reason === 'slow_client') raw.destroy(); // it is not reading: a last word would only wait too
          else raw.end(last);
          cleanup();
        }
        const write = (chunk: string) => {
          if (!closed) raw.write(chunk);
        };
        /**
         * Back-pressure, checked before each batch of events (and each heartbeat): a client that
         * still has more than SSE_MAX_BUFFER_BYTES waiting from earlier batches is not reading,
         * and is dropped. One batch may go over the bound (a burst of alerts reaches every
         * client whole), so a stream holds at most the bound plus one batch.
         */
        const stuck = (): boolean => {
          if (closed) return true;
          // bytes handed to the response that the socket has not yet passed to the kernel
          if (raw.writableLength <= settings.maxBufferBytes) return false;
          request.log.info({ user: user.id, buffered: raw.writableLength }, 'live stream dropped: the client is not reading');
          end('slow_client');
          return true;
        };
        open.add(end);
        raw.on('close', cleanup);
        if (request.raw.socket.destroyed) return cleanup(); // the client left while we prepared

        // The SSE id is a resume point, not the event's own id: every event up to it that this
        // user may see has been sent on this stream. Feed ids can commit out of order (see
        // FeedReader), so while replaying it stays where the replay started and afterwards it is
        // the hub's safe point. Resuming from it may repeat an event (the data carries the feed
        // id to deduplicate), never lose one.
        const start = window?.from ?? feed.safeId;
        let resumePoint = start;
        const sentIds = new Set<string>(); // only while replaying: replay and live can overlap
        const buffered: FeedEvent[] = [];
        let replaying = true;
        const send = (e: FeedEvent) => {
          if (BigInt(e.id) <= BigInt(start) || !visibleTo(e, user.role, user.id)) return;
          if (replaying || sentIds.size) {
            if (sentIds.has(e.id)) return;
            sentIds.add(e.id);
          }
          const { manager_ids: _m, audience: _a, ...data } = e;
          write(`id: ${resumePoint}\nevent: alert\ndata: ${JSON.stringify(data)}\n\n`);
        };
        unsubscribe = feed.subscribe((events) => {
          if (replaying) return void buffered.push(...events);
          if (stuck()) return;
          resumePoint = feed.safeId;
          for (const e of events) if (!closed) send(e);
        });
        heartbeat = setInterval(() => stuck() || write(`: heartbeat ${new Date().toISOString()}\n\n`), settings.heartbeatMs);
        const armExpiry = () => {
          if (user.expiresAt === undefined || closed) return;
          const left = user.expiresAt - Date.now();
          if (left > MAX_TIMER_MS) expiry = setTimeout(armExpiry, MAX_TIMER_MS);
          else expiry = setTimeout(() => end('token_expired', `event: expired\ndata: ${JSON.stringify({ reason: 'the token expired: reconnect with a new one', at: new Date(user.expiresAt!).toISOString() })}\n\n`), Math.max(0, left));
        };
        armExpiry();
        write(`retry: 2000\n\n`);
        if (window?.truncated) {
          const notice = {
            resumed_after: resumeFrom,
            replayed_after: window.from,
            reason: `replay is limited to the last ${settings.replayMax} events and ${settings.replayHours} hours; read earlier alerts and their history with GET /v1/alerts`,
          };
          write(`id: ${window.from}\nevent: truncated\ndata: ${JSON.stringify(notice)}\n\n`);
        }
        // what was raised since the resume point, then what arrived meanwhile, then live
        let cursor = start;
        try {
          while (!stuck()) {
            const missed = await feedAfter(pool, cursor, 500, user);
            for (const e of missed) if (!closed) send(e);
            if (missed.length < 500) break;
            cursor = missed[missed.length - 1]!.id;
          }
        } catch (err) {
          // the response is hijacked: no problem body now; the client reconnects and resumes
          request.log.warn({ err: (err as Error).message }, 'live stream replay failed');
          raw.destroy();
          return cleanup();
        }
        if (!stuck()) for (const e of buffered.splice(0)) if (!closed) send(e);
        replaying = false;
        sentIds.clear();
        resumePoint = feed.safeId;
      },
    );
  };
}

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { User } from '../platform/http/auth.js';
import { audit } from '../registry/audit.repo.js';
import { problem } from '../platform/http/problem.js';
import { feedAfter, replayWindow, visibleTo, type FeedEvent } from './feed.js';
import { createStreamSlots } from './stream-slots.js';
import type { StreamRoutesDeps } from './stream.routes.js';

/** Seconds a refused client is told to wait (429 Retry-After). */
const RETRY_AFTER_S = 30;
/** setTimeout's longest delay (about 24.8 days); a later expiry re-arms the timer */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How one caller's stream differs by where it is served (GET /v1/alerts/stream, GET /console/alerts/stream). */
export interface StreamCaller {
  /** who reads; `expiresAt` (epoch ms) ends the stream with `event: expired` */
  user: User;
  /** the Last-Event-ID to resume after, or null */
  resumeFrom: string | null;
  /** added to the `alerts.stream` audit row (e.g. `via`) */
  detail?: Record<string, unknown>;
  /** what `event: expired` says */
  expiredReason?: string;
  /** checked at each heartbeat: false ends the stream as expired (a session signed out meanwhile) */
  stillValid?: () => Promise<boolean>;
  /** where a truncated replay points the reader for older alerts */
  historyHint?: string;
}

/**
 * The live alert stream (contract §5, §6), one per process, shared by every route that serves it
 * so the per-user and total limits (SSE_MAX_PER_USER, SSE_MAX_TOTAL) count every stream of a user
 * wherever it is opened. Streams per user and in all are capped (429 with Retry-After); a client
 * that stops reading is dropped once SSE_MAX_BUFFER_BYTES wait for it, so memory stays bounded and
 * others are not held up; a resumed replay is bounded in count and age and says so
 * (`event: truncated`); the stream ends when the credential expires (`event: expired`) and when
 * the server shuts down (`closeAll`).
 */
export function createAlertStreams(deps: StreamRoutesDeps) {
  const { pool, metrics, settings } = deps;
  const slots = createStreamSlots(settings.maxPerUser, settings.maxTotal);
  const open = new Set<(reason: 'shutdown') => void>();

  async function serve(request: FastifyRequest, reply: FastifyReply, opts: StreamCaller): Promise<unknown> {
    const { user, resumeFrom } = opts;
    const expiredEvent = (at: number) =>
      `event: expired\ndata: ${JSON.stringify({ reason: opts.expiredReason ?? 'the token expired: reconnect with a new one', at: new Date(at).toISOString() })}\n\n`;
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
      await audit(pool, request, { action: 'alerts.stream', detail: { resume_from: resumeFrom, ...opts.detail } });
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
    heartbeat = setInterval(() => {
      if (stuck()) return;
      write(`: heartbeat ${new Date().toISOString()}\n\n`);
      // a credential that can end early (a console session signed out) is checked at each heartbeat
      if (opts.stillValid) void opts.stillValid().then((ok) => ok || end('token_expired', expiredEvent(Date.now())), () => undefined);
    }, settings.heartbeatMs);
    const armExpiry = () => {
      if (user.expiresAt === undefined || closed) return;
      const left = user.expiresAt - Date.now();
      if (left > MAX_TIMER_MS) expiry = setTimeout(armExpiry, MAX_TIMER_MS);
      else expiry = setTimeout(() => end('token_expired', expiredEvent(user.expiresAt!)), Math.max(0, left));
    };
    armExpiry();
    write(`retry: 2000\n\n`);
    if (window?.truncated) {
      const notice = {
        resumed_after: resumeFrom,
        replayed_after: window.from,
        reason: `replay is limited to the last ${settings.replayMax} events and ${settings.replayHours} hours; read earlier alerts and their history with ${opts.historyHint ?? 'GET /v1/alerts'}`,
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
  }

  return {
    serve,
    /** ends every open stream (server shutdown) */
    closeAll(): void {
      for (const close of [...open]) close('shutdown');
    },
  };
}

export type AlertStreams = ReturnType<typeof createAlertStreams>;

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import { audit } from '../registry/audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { DateTimeIn, RefId } from '../platform/http/schemas.js';
import { feedAfter, visibleTo, type FeedEvent, type FeedHub } from './feed.js';
import { getAlertFor, listAlertsFor, transition } from './lifecycle.repo.js';
import { fatigueStats } from './stats.repo.js';
import { ALERT_TYPES } from './rules.js';
import { urlProblem } from './webhooks.js';

export interface AlertRoutesDeps {
  pool: Pool;
  feed: FeedHub | null;
  allowPrivateWebhooks: boolean;
  heartbeatMs?: number;
}

const AlertId = Type.Object({ id: Type.String({ maxLength: 64 }) });
const NoteBody = Type.Object({ note: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
const MANAGERS = ['offender_manager', 'supervisor'] as const;

/** Alerts, their lifecycle, the live stream, fatigue figures and webhooks (contract §5, §6). */
export function alertsRoutes(deps: AlertRoutesDeps): FastifyPluginAsyncTypebox {
  const { pool } = deps;
  return async (app) => {
    app.get(
      '/v1/alerts',
      {
        config: { roles: MANAGERS },
        schema: {
          operationId: 'listAlerts',
          tags: ['alerts'],
          summary: 'Alerts of the caller’s caseload, newest first; page with `before` = the previous page’s next_before',
          querystring: Type.Object(
            {
              status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('acknowledged'), Type.Literal('resolved')])),
              subject_id: Type.Optional(RefId),
              type: Type.Optional(Type.Union(ALERT_TYPES.map((t) => Type.Literal(t)))),
              limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
              before: Type.Optional(Type.String({ pattern: '^[0-9T:.Z+-]+_[0-9a-f-]{36}$' })),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        const q = request.query;
        const [raised_at, id] = q.before ? q.before.split('_') : [];
        const items = await listAlertsFor(pool, userOf(request), { ...q, before: raised_at && id ? { raised_at, id } : null });
        await audit(pool, request, { action: 'alerts.read', subjectId: q.subject_id ?? null, detail: { count: items.length } });
        const last = items[items.length - 1] as { raised_at: Date; id: string } | undefined;
        return { items, next_before: items.length === q.limit && last ? `${last.raised_at.toISOString()}_${last.id}` : null };
      },
    );

    app.get('/v1/alerts/:id', { config: { roles: MANAGERS }, schema: { operationId: 'getAlert', summary: 'An alert with its history', tags: ['alerts'], params: AlertId } }, async (request, reply) => {
      const alert = await getAlertFor(pool, userOf(request), request.params.id);
      if (!alert) return problem(reply, 404, 'Not Found', `alert ${request.params.id} not found`);
      await audit(pool, request, { action: 'alert.read', subjectId: alert.subject_id as string, detail: { alert_id: alert.id } });
      return alert;
    });

    app.post(
      '/v1/alerts/:id/acknowledge',
      { config: { roles: ['offender_manager'] }, schema: { operationId: 'acknowledgeAlert', summary: 'Acknowledge an alert, with a note', tags: ['alerts'], params: AlertId, body: Type.Optional(NoteBody) } },
      async (request, reply) => {
        const r = await transition(pool, userOf(request), request.params.id, 'acknowledged', request.body?.note ?? null, null);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        await audit(pool, request, { action: 'alert.acknowledge', subjectId: r.alert.subject_id as string, detail: { alert_id: request.params.id } });
        return r.alert;
      },
    );

    app.post(
      '/v1/alerts/:id/resolve',
      {
        config: { roles: ['offender_manager'] },
        schema: {
          operationId: 'resolveAlert',
          summary: 'Resolve an alert, with a note',
          tags: ['alerts'],
          params: AlertId,
          body: Type.Optional(Type.Object({ note: Type.Optional(Type.String({ maxLength: 2000 })), false_alarm: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
        },
      },
      async (request, reply) => {
        const r = await transition(pool, userOf(request), request.params.id, 'resolved', request.body?.note ?? null, request.body?.false_alarm ?? false);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        await audit(pool, request, { action: 'alert.resolve', subjectId: r.alert.subject_id as string, detail: { alert_id: request.params.id } });
        return r.alert;
      },
    );

    app.get(
      '/v1/alerts/stream',
      {
        config: { roles: MANAGERS },
        schema: { operationId: 'streamAlerts', tags: ['alerts'], summary: 'Server-Sent Events of alerts as raised and as they change; resumes from Last-Event-ID', querystring: Type.Object({ last_event_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })) }, { additionalProperties: false }) },
      },
      async (request, reply) => {
        const user = userOf(request);
        const header = request.headers['last-event-id'];
        const resumeFrom = typeof header === 'string' && /^[0-9]{1,18}$/.test(header) ? header : (request.query.last_event_id ?? null);
        if (!deps.feed) return problem(reply, 503, 'Service Unavailable', 'the alert feed is not running in this process');
        await audit(pool, request, { action: 'alerts.stream', detail: { resume_from: resumeFrom } });
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        // The SSE id is a resume point, not the event's own id: every event up to it that this
        // user may see has been sent on this stream. Feed ids can commit out of order (see
        // FeedReader), so while replaying it stays where the replay started and afterwards it is
        // the hub's safe point. Resuming from it may repeat an event (the data carries the feed
        // id to deduplicate), never lose one.
        const feed = deps.feed;
        const start = resumeFrom ?? feed.safeId;
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
          raw.write(`id: ${resumePoint}\nevent: alert\ndata: ${JSON.stringify(data)}\n\n`);
        };
        const unsubscribe = feed.subscribe((events) => {
          if (replaying) return void buffered.push(...events);
          resumePoint = feed.safeId;
          events.forEach(send);
        });
        const heartbeat = setInterval(() => raw.write(`: heartbeat ${new Date().toISOString()}\n\n`), deps.heartbeatMs ?? 15_000);
        raw.on('close', () => {
          clearInterval(heartbeat);
          unsubscribe();
        });
        raw.write(`retry: 2000\n\n`);
        // what was raised since the resume point, then what arrived meanwhile, then live
        let cursor = start;
        for (;;) {
          const missed = await feedAfter(pool, cursor, 500, user);
          missed.forEach(send);
          if (missed.length < 500) break;
          cursor = missed[missed.length - 1]!.id;
        }
        buffered.splice(0).forEach(send);
        replaying = false;
        sentIds.clear();
        resumePoint = feed.safeId;
      },
    );

    app.get(
      '/v1/alerts/stats',
      {
        config: { roles: ['supervisor'] },
        schema: { operationId: 'getAlertStats', tags: ['alerts'], summary: 'Alert fatigue figures per manager and per subject over [from, to)', querystring: Type.Object({ from: DateTimeIn, to: DateTimeIn }, { additionalProperties: false }) },
      },
      async (request, reply) => {
        const from = new Date(request.query.from);
        const to = new Date(request.query.to);
        if (!(from < to)) return problem(reply, 400, 'Bad Request', '`from` must be before `to`');
        await audit(pool, request, { action: 'alerts.stats', detail: request.query });
        return { from: from.toISOString(), to: to.toISOString(), ...(await fatigueStats(pool, from, to)) };
      },
    );

    app.post(
      '/v1/webhooks',
      {
        config: { roles: MANAGERS },
        schema: {
          operationId: 'createWebhook',
          tags: ['webhooks'],
          summary: 'Register a webhook for the caller’s caseload (a supervisor: every subject, and escalations)',
          body: Type.Object({ url: Type.String({ maxLength: 2000 }), secret: Type.String({ minLength: 16, maxLength: 256 }) }, { additionalProperties: false }),
        },
      },
      async (request, reply) => {
        const why = await urlProblem(request.body.url, deps.allowPrivateWebhooks);
        if (why) return problem(reply, 400, 'Bad Request', why);
        const user = userOf(request);
        const r = await pool.query<{ id: string; created_at: Date }>(
          `INSERT INTO webhooks (owner_id, owner_role, url, secret) VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
          [user.id, user.role, request.body.url, request.body.secret],
        );
        await audit(pool, request, { action: 'webhook.create', detail: { webhook_id: r.rows[0]!.id, url: request.body.url } });
        return reply.code(201).send({ id: r.rows[0]!.id, url: request.body.url, created_at: r.rows[0]!.created_at });
      },
    );

    app.get('/v1/webhooks', { config: { roles: MANAGERS }, schema: { operationId: 'listWebhooks', summary: 'The caller’s webhooks', tags: ['webhooks'] } }, async (request) => {
      const r = await pool.query(`SELECT id, url, active, created_at FROM webhooks WHERE owner_id = $1 AND active ORDER BY created_at`, [userOf(request).id]);
      return { items: r.rows };
    });

    app.delete('/v1/webhooks/:id', { config: { roles: MANAGERS }, schema: { operationId: 'deleteWebhook', summary: 'Delete one of the caller’s webhooks', tags: ['webhooks'], params: AlertId } }, async (request, reply) => {
      if (!/^[0-9a-f-]{36}$/i.test(request.params.id)) return problem(reply, 404, 'Not Found', 'webhook not found');
      const r = await pool.query(`UPDATE webhooks SET active = false WHERE id = $1 AND owner_id = $2 AND active`, [request.params.id, userOf(request).id]);
      if (!r.rowCount) return problem(reply, 404, 'Not Found', 'webhook not found');
      await audit(pool, request, { action: 'webhook.delete', detail: { webhook_id: request.params.id } });
      return reply.code(204).send();
    });
  };
}


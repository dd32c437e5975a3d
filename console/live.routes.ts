import type { FastifyInstance } from 'fastify';
import { userOf } from '../platform/http/auth.js';
import { auditSubjects } from '../registry/audit.repo.js';
import { resumePoint } from '../alerts/stream.routes.js';
import { sessionAlive } from './sessions.repo.js';
import { inboxRowFor } from './live.repo.js';
import { alertView } from './present.js';
import type { ConsoleDeps } from './console.plugin.js';

const MANAGERS = ['offender_manager', 'supervisor'] as const;

/**
 * The live inbox (docs/console.md, "Live"): the alert stream for the browser, authenticated by the
 * session cookie, and one inbox row as HTML for the page script to insert.
 *
 * GET /console/alerts/stream is the stream of GET /v1/alerts/stream (alerts/stream.ts, the same
 * instance): the same events, caseload filter, SSE_MAX_* limits, Last-Event-ID replay and
 * `alerts.stream` audit row (with `via: console.inbox`). It ends when the session ends: at its
 * absolute or idle expiry (a stream is not activity), or within one heartbeat of sign-out.
 */
export function liveRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/alerts/stream', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const session = request.consoleSession!;
      const query = (request.query ?? {}) as { last_event_id?: unknown };
      const fromQuery = typeof query.last_event_id === 'string' && /^[0-9]{1,18}$/.test(query.last_event_id) ? query.last_event_id : undefined;
      return deps.streams.serve(request, reply, {
        user: { ...userOf(request), expiresAt: session.endsAt.getTime() },
        resumeFrom: resumePoint(request.headers['last-event-id'], fromQuery),
        detail: { via: 'console.inbox' },
        expiredReason: 'the console session ended: sign in again',
        stillValid: () => sessionAlive(pool, session.key, new Date()),
        historyHint: 'the alert inbox',
      });
    });

    /** One alert of the caseload as an inbox row (any status): what the live inbox inserts or replaces. Audited as a read. */
    app.get<{ Params: { id: string } }>('/alerts/:id/row', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const row = await inboxRowFor(pool, userOf(request), request.params.id);
      if (!row) return reply.code(404).type('text/plain').send('not in your caseload');
      await auditSubjects(pool, request, 'alerts.read', new Map([[row.subject_id, { alert_ids: [row.id] }]]), { count: 1, via: 'console.inbox.live' });
      return reply.view('live/inbox-row.njk', { a: { ...row, view: alertView(row) }, user: request.user, csrf: session(request) });
    });
  };
}

const session = (request: { consoleSession: { csrf: string } | null }) => request.consoleSession?.csrf ?? '';

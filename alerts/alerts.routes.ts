import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { rollbackWith, withTransaction, type Pool, type TxClient } from '../platform/db.js';
import { DateTime } from 'luxon';
import { audit, auditSubjects } from '../registry/audit.repo.js';
import { userOf, type Role, type User } from '../platform/http/auth.js';
import { Problem, problem } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { DateTimeIn, RefId } from '../platform/http/schemas.js';
import type { FeedHub } from './feed.js';
import { getAlertFor, listAlertsFor, transition, type Transition } from './lifecycle.repo.js';
import { fatigueStats } from './stats.repo.js';
import { ALERT_TYPES, isReviewed } from './rules.js';

export interface AlertRoutesDeps {
  pool: Pool;
  feed: FeedHub | null;
  /** the role that reviews drinking events and alcohol tampers (ALCOHOL_REVIEW_ROLE) */
  reviewRole?: Role;
  /**
   * Records a `not_confirmed` review (and its effect on the figures) inside the resolving
   * transaction: resolving a reviewed alert as a false alarm counts as that review only when the
   * person resolving holds the review role (contract 1.1 §4). Null: resolving never reviews.
   */
  reviewFalseAlarm?: ((db: TxClient, user: User, alertId: string, note: string | null) => Promise<unknown>) | null;
}

const AlertId = Type.Object({ id: Type.String({ maxLength: 64 }) });
const NoteBody = Type.Object({ note: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
const MANAGERS = ['offender_manager', 'supervisor'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `before` cursor of GET /v1/alerts (`{raised_at RFC 3339}_{alert uuid}`), or null when malformed. */
export function parseAlertCursor(before: string): { raised_at: string; id: string } | null {
  const cut = before.lastIndexOf('_');
  const raisedAt = before.slice(0, cut);
  const id = before.slice(cut + 1);
  if (cut < 1 || !UUID.test(id) || !DateTime.fromISO(raisedAt, { setZone: true }).isValid) return null;
  return { raised_at: raisedAt, id };
}

/**
 * Resolves an alert of the caller's caseload (the API and the console both come here): the
 * transition, its audit row and, for a false alarm resolved by the review role, the review.
 */
export async function resolveAlert(deps: AlertRoutesDeps, request: FastifyRequest, id: string, note: string | null, falseAlarm: boolean): Promise<Transition> {
  const user = userOf(request);
  const reviews = falseAlarm && user.role === deps.reviewRole && deps.reviewFalseAlarm ? deps.reviewFalseAlarm : null;
  return withTransaction(deps.pool, async (client) => {
    // the review first: it takes the subject's alcohol lock before touching the alert row, in
    // the order the evaluate job takes them (lock, then alert rows), so the two never deadlock
    const before = reviews ? await getAlertFor(client, user, id) : null;
    const reviewed = before !== null && isReviewed(before.type as string) && before.status !== 'resolved';
    if (reviewed) await reviews!(client, user, id, note);
    const t = await transition(client, user, id, 'resolved', note, falseAlarm);
    if (!t.ok) {
      if (reviewed) rollbackWith(t); // undo the review with the refused resolve
      return t;
    }
    await audit(client, request, { action: 'alert.resolve', subjectId: t.alert.subject_id as string, detail: { alert_id: id } });
    if (reviewed) await audit(client, request, { action: 'alert.review', subjectId: t.alert.subject_id as string, detail: { alert_id: id, type: t.alert.type, decision: 'not_confirmed', via: 'resolve' } });
    return t;
  });
}

/** Acknowledges an alert of the caller's caseload, with its audit row (the API and the console). */
export async function acknowledgeAlert(pool: Pool, request: FastifyRequest, id: string, note: string | null): Promise<Transition> {
  const r = await transition(pool, userOf(request), id, 'acknowledged', note, null);
  if (r.ok) await audit(pool, request, { action: 'alert.acknowledge', subjectId: r.alert.subject_id as string, detail: { alert_id: id } });
  return r;
}

/** Alerts, their lifecycle and fatigue figures (contract §5, §6); the live stream is in stream.routes.ts, webhooks in webhooks.routes.ts. */
export function alertsRoutes(deps: AlertRoutesDeps): FastifyPluginAsyncTypebox {
  const { pool } = deps;
  return async (app) => {
    app.get(
      '/v1/alerts',
      {
        // a supervisor naming one subject reads that person's alerts: a reason is required
        config: { roles: MANAGERS, reasonRequired: (request) => supervisorReadsOneSubject(request) && !!(request.query as { subject_id?: string }).subject_id },
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
      async (request, reply) => {
        const q = request.query;
        const before = q.before ? parseAlertCursor(q.before) : null;
        if (q.before && !before) return problem(reply, 400, 'Bad Request', '`before` is not a cursor of this list: give the next_before of the previous page');
        const items = await listAlertsFor(pool, userOf(request), { ...q, before });
        const shown = new Map<string, { alert_ids: string[] }>();
        for (const a of items as Array<{ id: string; subject_id: string }>) {
          const entry = shown.get(a.subject_id) ?? { alert_ids: [] };
          entry.alert_ids.push(a.id);
          shown.set(a.subject_id, entry);
        }
        await auditSubjects(pool, request, 'alerts.read', shown, { count: items.length, filter: { status: q.status ?? null, type: q.type ?? null, subject_id: q.subject_id ?? null } });
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
        const r = await acknowledgeAlert(pool, request, request.params.id, request.body?.note ?? null);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
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
        const r = await resolveAlert(deps, request, request.params.id, request.body?.note ?? null, request.body?.false_alarm ?? false);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        return r.alert;
      },
    );

    app.get(
      '/v1/alerts/stats',
      {
        config: { roles: ['supervisor', 'admin'] },
        schema: {
          tags: ['alerts'],
          operationId: 'getAlertFatigue',
          summary: 'Alert fatigue figures for the fleet, per offender manager and per subject over [from, to) (/metrics carries only the fleet figures)',
          querystring: Type.Object({ from: DateTimeIn, to: DateTimeIn }, { additionalProperties: false }),
          response: { 400: Type.Ref(Problem), 401: Type.Ref(Problem), 403: Type.Ref(Problem) },
        },
      },
      async (request, reply) => {
        const from = new Date(request.query.from);
        const to = new Date(request.query.to);
        if (!(from < to)) return problem(reply, 400, 'Bad Request', '`from` must be before `to`');
        const stats = await fatigueStats(pool, from, to);
        // a read of figures about named people: who was seen is in the audit row
        await audit(pool, request, { action: 'alerts.stats', detail: { ...request.query, subject_ids: stats.subjects.map((x) => x.subject_id), manager_ids: stats.managers.map((m) => m.manager_id) } });
        return { from: from.toISOString(), to: to.toISOString(), ...stats };
      },
    );
    // webhooks: alerts/webhooks.routes.ts
  };
}


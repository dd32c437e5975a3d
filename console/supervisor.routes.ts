import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DateTime } from 'luxon';
import { userOf, type Role } from '../platform/http/auth.js';
import { parseReason, REASON_MAX, REASON_MIN } from '../platform/http/reason.js';
import { audit, auditSubjects } from '../registry/audit.repo.js';
import { getAlertFor } from '../alerts/lifecycle.repo.js';
import { fatigueStats } from '../alerts/stats.repo.js';
import { isReviewed } from '../alerts/rules.js';
import { reviewAlert } from '../alcohol/review.routes.js';
import type { ConsoleDeps } from './console.plugin.js';
import { alertView } from './present.js';
import { curveAround, escalationsFor, paramsOf, reviewQueueFor } from './supervisor.repo.js';
import { curveView, duration, fatigueView, type CurveSummary } from './oversight.present.js';

const LIST_MAX = 200;
const FATIGUE_MAX_DAYS = 366;
/** the curve around an event: 6 hours either side (device time) */
const CURVE_MARGIN_MS = 6 * 3600_000;

type Params = { id: string };
type Form = Record<string, unknown>;
type FieldError = { text: string; href: string };
/** The first error of each field (`href` #name), for the field's own error message. */
const fieldErrors = (errors: FieldError[]): Record<string, string> => Object.fromEntries([...errors].reverse().map((e) => [e.href.slice(1), e.text]));

/**
 * The supervisor's pages (issue 11 §5, issue 12 §4): escalations, alert fatigue, the alcohol
 * review queue and the review page. Each reads through the API's functions with the API's role
 * checks (`config.roles` as on the /v1 route) and writes the API's audit rows, `via: console…`.
 */
export function supervisorRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  const reviewRole: Role = deps.alerts.reviewRole ?? 'supervisor';
  return async (app: FastifyInstance): Promise<void> => {
    // CSRF: the console plugin's one preHandler checks every non-GET session route
    const page = (request: FastifyRequest, data: Record<string, unknown>) => ({ ...data, user: request.user, csrf: request.consoleSession?.csrf ?? '' });

    app.get('/supervisor/escalations', { config: { roles: ['supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const { items, more } = await escalationsFor(pool, userOf(request), LIST_MAX);
      const shown = new Map<string, { alert_ids: string[] }>();
      for (const a of items) shown.set(a.subject_id, { alert_ids: [...(shown.get(a.subject_id)?.alert_ids ?? []), a.id] });
      await auditSubjects(pool, request, 'alerts.read', shown, { count: items.length, via: 'console.escalations', filter: { status: 'open', escalated: true } });
      const now = Date.now();
      const rows = items.map((a) => ({ ...a, view: alertView(a), age: duration(now - a.raised_at.getTime()), escalatedFor: duration(now - a.escalated_at.getTime()) }));
      return reply.view('supervisor/escalations.njk', page(request, { title: 'Escalations', nav: 'escalations', rows, more }));
    });

    app.get('/supervisor/alert-fatigue', { config: { roles: ['supervisor', 'admin'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const q = request.query as Record<string, unknown>;
      const today = DateTime.utc().startOf('day');
      const from = typeof q.from === 'string' ? q.from : today.minus({ days: 30 }).toISODate()!;
      const to = typeof q.to === 'string' ? q.to : today.plus({ days: 1 }).toISODate()!;
      const errors: FieldError[] = [];
      const f = DateTime.fromISO(from, { zone: 'utc' });
      const t = DateTime.fromISO(to, { zone: 'utc' });
      if (!/^\d{4}-\d{2}-\d{2}$/.test(from) || !f.isValid) errors.push({ text: 'Enter the start of the period as a date, for example 2026-11-01', href: '#from' });
      if (!/^\d{4}-\d{2}-\d{2}$/.test(to) || !t.isValid) errors.push({ text: 'Enter the end of the period as a date, for example 2026-12-01', href: '#to' });
      if (errors.length === 0 && !(f < t)) errors.push({ text: 'The start of the period must be before its end', href: '#from' });
      if (errors.length === 0 && t.diff(f, 'days').days > FATIGUE_MAX_DAYS) errors.push({ text: `The period can be at most ${FATIGUE_MAX_DAYS} days`, href: '#to' });
      const form = { from: String(from).slice(0, 32), to: String(to).slice(0, 32) };
      if (errors.length) return reply.code(400).view('supervisor/fatigue.njk', page(request, { title: 'Alert fatigue', nav: 'fatigue', errors, fieldErrors: fieldErrors(errors), form }));
      // the API's figures for [from, to) (UTC midnights), audited as the API audits them
      const stats = await fatigueStats(pool, f.toJSDate(), t.toJSDate());
      await audit(pool, request, { action: 'alerts.stats', detail: { from: f.toISO(), to: t.toISO(), via: 'console.fatigue', subject_ids: stats.subjects.map((x) => x.subject_id), manager_ids: stats.managers.map((m) => m.manager_id) } });
      return reply.view('supervisor/fatigue.njk', page(request, { title: 'Alert fatigue', nav: 'fatigue', form, view: fatigueView(stats.managers, stats.fleet), toShown: t.minus({ days: 1 }).toISODate() }));
    });

    app.get('/supervisor/alcohol-review', { config: { roles: [reviewRole], session: true }, schema: { hide: true } }, async (request, reply) => {
      const { items, more } = await reviewQueueFor(pool, userOf(request), LIST_MAX);
      const shown = new Map<string, { alert_ids: string[] }>();
      for (const a of items) shown.set(a.subject_id, { alert_ids: [...(shown.get(a.subject_id)?.alert_ids ?? []), a.id] });
      await auditSubjects(pool, request, 'alerts.read', shown, { count: items.length, via: 'console.alcohol-review', filter: { review_status: 'pending' } });
      const done = typeof (request.query as Form).done === 'string' ? String((request.query as Form).done).slice(0, 64) : null;
      const now = Date.now();
      const rows = items.map((a) => ({ ...a, view: alertView({ ...a, severity: 'high' }), waiting: duration(now - a.raised_at.getTime()) }));
      return reply.view('supervisor/review-queue.njk', page(request, { title: 'Alcohol review', nav: 'alcohol-review', rows, more, done }));
    });

    /** The review page: the curves and the form. `errors` re-shows the form with what was typed. */
    const showReview = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, errors: FieldError[] = [], typed: Form = {}) => {
      const alert = await getAlertFor(pool, userOf(request), request.params.id);
      if (!alert || !isReviewed(alert.type as string)) return reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: 'There is no drinking event or alcohol tamper with this reference in your caseload.' }));
      await audit(pool, request, { action: 'alert.read', subjectId: alert.subject_id as string, detail: { alert_id: alert.id, via: 'console.alcohol-review' } });
      const evidence = Array.isArray(alert.evidence) ? (alert.evidence as Array<Record<string, unknown>>) : [];
      const summary = (evidence[0]?.summary ?? {}) as CurveSummary;
      const startedAt = alert.started_at as Date;
      const endedAt = (alert.ended_at as Date | null) ?? (summary.end ? new Date(summary.end) : startedAt);
      let readings = await curveAround(pool, alert.device_id as string | null, startedAt, endedAt, CURVE_MARGIN_MS);
      if (readings.length === 0) {
        readings = evidence.slice(1).flatMap((e) => (typeof e.ts === 'string' && typeof e.tac === 'number' ? [{ ts: Date.parse(e.ts), tac: e.tac, ir: typeof e.ir === 'number' ? e.ir : null, temp_c: Number(e.temp_c) }] : []));
      }
      const tz = ((await pool.query<{ timezone: string }>(`SELECT timezone FROM subjects WHERE id = $1`, [alert.subject_id])).rows[0]?.timezone) ?? 'Europe/London';
      const curve = curveView(summary, readings, await paramsOf(pool, summary.params_version ?? null), tz);
      return reply.code(errors.length ? 400 : 200).view('supervisor/review.njk', page(request, { title: 'Review', nav: 'alcohol-review', alert, view: alertView(alert as never), summary, curve, errors, fieldErrors: fieldErrors(errors), typed, reason: request.reason ?? '' }));
    };
    const askReason = (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, error?: string) =>
      reply.code(error ? 400 : 200).view('reason.njk', page(request, { title: 'Why are you opening this record?', action: `/console/supervisor/alcohol-review/${encodeURIComponent(request.params.id)}/open`, error, min: REASON_MIN, max: REASON_MAX }));
    /** A supervisor's reason from the form (the audit row of the read carries it), or what is wrong with it. */
    const takeReason = (request: FastifyRequest<{ Params: Params }>): string | null => {
      const parsed = parseReason(String((request.body as Form | undefined)?.reason ?? ''));
      if ('problem' in parsed) return `The reason ${parsed.problem}`;
      request.reason = parsed.reason;
      return null;
    };
    const needsReason = (request: FastifyRequest) => userOf(request).role === 'supervisor';

    app.get<{ Params: Params }>('/supervisor/alcohol-review/:id', { config: { roles: [reviewRole], session: true }, schema: { hide: true } }, async (request, reply) => {
      return needsReason(request) ? askReason(request, reply) : showReview(request, reply);
    });
    app.post<{ Params: Params }>('/supervisor/alcohol-review/:id/open', { config: { roles: [reviewRole], session: true }, schema: { hide: true } }, async (request, reply) => {
      const why = needsReason(request) ? takeReason(request) : null;
      return why ? askReason(request, reply, why) : showReview(request, reply);
    });

    app.post<{ Params: Params }>('/supervisor/alcohol-review/:id', { config: { roles: [reviewRole], session: true }, schema: { hide: true } }, async (request, reply) => {
      const body = (request.body ?? {}) as Form;
      // the page carries the supervisor's reason, so a re-shown page is audited with it too
      if (needsReason(request) && takeReason(request)) return askReason(request, reply, 'Give the reason for opening this record again');
      const decision = body.decision === 'confirmed' || body.decision === 'not_confirmed' ? body.decision : null;
      const note = typeof body.note === 'string' ? body.note.trim() : '';
      const errors: FieldError[] = [];
      if (!decision) errors.push({ text: 'Select whether the event is confirmed or not confirmed', href: '#decision' });
      if (note === '') errors.push({ text: 'Enter a note saying why: what you saw in the curve, a lab result, the wearer’s account', href: '#note' });
      else if (note.length > 2000) errors.push({ text: 'The note must be 2000 characters or fewer', href: '#note' });
      const typed = { decision: decision ?? '', note: typeof body.note === 'string' ? body.note.slice(0, 2100) : '' };
      if (errors.length) return showReview(request, reply, errors, typed);
      // the API's review: the decision, the reclassified days and the audit row in one transaction
      const r = await reviewAlert(pool, request, request.params.id, decision!, note, 'console');
      if (!r.ok && r.status === 404) return showReview(request, reply);
      if (!r.ok) return reply.code(409).view('error.njk', page(request, { title: 'This alert cannot be reviewed', message: r.detail }));
      return reply.code(303).header('location', `/console/supervisor/alcohol-review?done=${encodeURIComponent(r.alert.id)}`).send();
    });
  };
}

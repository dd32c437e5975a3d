import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ROLES, userOf } from '../platform/http/auth.js';
import { parseReason, REASON_MAX, REASON_MIN } from '../platform/http/reason.js';
import { audit, auditSubjects } from '../registry/audit.repo.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { listZones } from '../geofence/zones.repo.js';
import { acknowledgeAlert, resolveAlert } from '../alerts/alerts.routes.js';
import { getAlertFor, listAlertsFor } from '../alerts/lifecycle.repo.js';
import { CASELOAD_SORTS, caseloadFor, evidenceWithReceipt, inboxFor, zoneForMap, type CaseloadSort } from './console.repo.js';
import { signOut } from './sign-in.routes.js';
import type { ConsoleDeps } from './console.plugin.js';
import { alertView, lateText } from './present.js';
import { keepReason, keptReason, type ReasonRecord } from './live.repo.js';
import { sobrietyCalendar } from './calendar.js';
import { subjectMapView } from './subject.routes.js';

const MANAGERS = ['offender_manager', 'supervisor'] as const;
const PAGE_SIZE = 25;
/** where /console sends each role: the first page of its navigation */
const HOME: Partial<Record<string, string>> = { offender_manager: '/console/caseload', supervisor: '/console/supervisor/escalations', analyst: '/console/analyst/sober-days', admin: '/console/admin/devices' };
const CASELOAD_MAX = 500;

type Params = { id: string };
type Form = Record<string, unknown>;

/** The pages of offender managers and supervisors: caseload, alert inbox, alert and subject pages. */
export function pageRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    // CSRF: the console plugin's one preHandler checks every non-GET session route

    const page = (request: FastifyRequest, data: Record<string, unknown>) => ({ ...data, user: request.user, csrf: request.consoleSession?.csrf ?? '' });
    const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) =>
      reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: `There is no ${what} with this reference in your caseload.` }));

    app.get('/', { config: { roles: ROLES, session: true }, schema: { hide: true } }, async (request, reply) => {
      const first = HOME[userOf(request).role];
      if (first) return reply.code(303).header('location', first).send();
      return reply.view('home.njk', page(request, { title: 'Console' }));
    });

    app.post('/sign-out', { config: { roles: ROLES, session: true }, schema: { hide: true } }, async (request, reply) => signOut(deps, request, reply));

    app.get('/caseload', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const raw = request.query as Record<string, unknown>;
      const search = typeof raw.q === 'string' && raw.q.trim() !== '' ? raw.q.trim().slice(0, 128) : undefined;
      const rag = typeof raw.rag === 'string' && ['red', 'amber', 'green'].includes(raw.rag) ? (raw.rag as 'red' | 'amber' | 'green') : undefined;
      const sort = typeof raw.sort === 'string' && raw.sort in CASELOAD_SORTS ? (raw.sort as CaseloadSort) : 'rag';
      const rows = await caseloadFor(pool, userOf(request), { search, rag, sort, limit: CASELOAD_MAX });
      await auditSubjects(pool, request, 'subject.list', new Map(rows.map((s) => [s.id, { via: 'console.caseload' }])), { count: rows.length, filter: { search: search ?? null, rag: rag ?? null } });
      return reply.view('caseload.njk', page(request, { title: 'Caseload', nav: 'caseload', rows, truncated: rows.length === CASELOAD_MAX, search: search ?? '', rag: rag ?? '', sort }));
    });

    app.get('/alerts', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const n = Number((request.query as { page?: string }).page ?? '1');
      const pageNo = Number.isInteger(n) && n >= 1 && n <= 10_000 ? n : 1;
      const { items, more } = await inboxFor(pool, userOf(request), pageNo, PAGE_SIZE);
      const shown = new Map<string, { alert_ids: string[] }>();
      for (const a of items) shown.set(a.subject_id, { alert_ids: [...(shown.get(a.subject_id)?.alert_ids ?? []), a.id] });
      await auditSubjects(pool, request, 'alerts.read', shown, { count: items.length, via: 'console.inbox', filter: { status: 'open' } });
      return reply.view('inbox.njk', page(request, { title: 'Open alerts', nav: 'alerts', items: items.map((a) => ({ ...a, view: alertView(a) })), pageNo, more }));
    });

    /** The alert page; a supervisor first states why (the reason lands in the audit row, as X-Tagwatch-Reason does on the API). */
    const showAlert = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const alert = await getAlertFor(pool, userOf(request), request.params.id);
      if (!alert) return notFound(request, reply, 'alert');
      await audit(pool, request, { action: 'alert.read', subjectId: alert.subject_id as string, detail: { alert_id: alert.id, via: 'console' } });
      const fixes = await evidenceWithReceipt(pool, alert.device_id as string | null, alert.evidence);
      const a = alert as Record<string, unknown> & { history: unknown[] };
      const zone = await zoneForMap(pool, alert.subject_id as string, (alert.zone_id as string | null) ?? null);
      const mapData = { zone, fixes: fixes.map((f) => ({ ts: f.ts, lon: f.lon, lat: f.lat, accuracy_m: f.accuracy_m, class: f.class })) };
      return reply.view('alert.njk', page(request, { title: 'Alert', nav: 'alerts', alert: a, view: alertView(a as never), late: lateText(a as never), fixes, zone, mapData }));
    };
    const askReason = (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, action: string, error?: string) =>
      reply.code(error ? 400 : 200).view('reason.njk', page(request, { title: 'Why are you opening this record?', action, error, min: REASON_MIN, max: REASON_MAX }));
    /** The reason form's answer: validated, or what is wrong with it. */
    const takeReason = (request: FastifyRequest<{ Params: Params }>): { reason: string } | { error: string } => {
      const parsed = parseReason(String((request.body as Form | undefined)?.reason ?? ''));
      return 'problem' in parsed ? { error: `The reason ${parsed.problem}` } : parsed;
    };
    /**
     * A supervisor's GET of one record: with a reason this session gave for it in the last 15
     * minutes (console/live.repo.ts), the record is shown and the audit row carries the reason;
     * otherwise the reason form. POST …/open keeps the reason and redirects here (POST-redirect-GET:
     * a reload is a GET, audited again with the same reason).
     */
    /** The page's own query (the track period, the calendar month), kept through the reason form. */
    const pageQuery = (request: FastifyRequest) => {
      const q = new URLSearchParams(Object.entries(request.query as Record<string, unknown>).filter((e): e is [string, string] => ['from', 'to', 'month'].includes(e[0]) && typeof e[1] === 'string')).toString();
      return q ? `?${q}` : '';
    };
    const withReason = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, kind: ReasonRecord, show: typeof showAlert) => {
      const url = `/console/${kind === 'alert' ? 'alerts' : 'subjects'}/${encodeURIComponent(request.params.id)}`;
      if (userOf(request).role !== 'supervisor') return show(request, reply);
      const reason = await keptReason(pool, request.consoleSession!.key, kind, request.params.id, new Date());
      if (!reason) return askReason(request, reply, `${url}/open${pageQuery(request)}`);
      request.reason = reason;
      return show(request, reply);
    };
    const giveReason = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, kind: ReasonRecord) => {
      const url = `/console/${kind === 'alert' ? 'alerts' : 'subjects'}/${encodeURIComponent(request.params.id)}`;
      const given = takeReason(request);
      if ('error' in given) return askReason(request, reply, `${url}/open${pageQuery(request)}`, given.error);
      await keepReason(pool, request.consoleSession!.key, kind, request.params.id, given.reason, new Date());
      return reply.code(303).header('location', `${url}${pageQuery(request)}`).send();
    };

    app.get<{ Params: Params }>('/alerts/:id', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => withReason(request, reply, 'alert', showAlert));
    app.post<{ Params: Params }>('/alerts/:id/open', { config: { roles: ['supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => giveReason(request, reply, 'alert'));

    const note = (body: Form | undefined): string | null => {
      const t = typeof body?.note === 'string' ? body.note.trim().slice(0, 2000) : '';
      return t === '' ? null : t;
    };
    const back = (request: FastifyRequest<{ Params: Params }>) => ((request.body as Form | undefined)?.return_to === 'inbox' ? '/console/alerts' : `/console/alerts/${encodeURIComponent(request.params.id)}`);
    const changed = (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, r: { ok: boolean; status?: number; detail?: string }) => {
      if (r.ok) return reply.code(303).header('location', back(request)).send();
      if (r.status === 404) return notFound(request, reply, 'alert');
      return reply.code(409).view('error.njk', page(request, { title: 'The alert has already changed', message: r.detail }));
    };
    app.post<{ Params: Params }>('/alerts/:id/acknowledge', { config: { roles: ['offender_manager'], session: true }, schema: { hide: true } }, async (request, reply) => {
      return changed(request, reply, await acknowledgeAlert(pool, request, request.params.id, note(request.body as Form)));
    });
    app.post<{ Params: Params }>('/alerts/:id/resolve', { config: { roles: ['offender_manager'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const body = request.body as Form | undefined;
      return changed(request, reply, await resolveAlert(deps.alerts, request, request.params.id, note(body), body?.false_alarm === 'yes'));
    });

    const showSubject = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const user = userOf(request);
      const subject = await getSubjectFor(pool, user, request.params.id);
      if (!subject) return notFound(request, reply, 'person');
      const alerts = await listAlertsFor(pool, user, { subject_id: subject.id, limit: 50 });
      await audit(pool, request, { action: 'subject.read', subjectId: subject.id, detail: { via: 'console', alert_ids: alerts.map((a) => a.id) } });
      const calendar = await sobrietyCalendar(pool, request, subject, (request.query as { month?: unknown }).month);
      const map = await subjectMapView(deps, request, subject);
      const editableZones = user.role === 'offender_manager' ? await listZones(pool, subject.id) : [];
      return reply.code(map.mapErrors.length ? 400 : 200).view('subject.njk', page(request, { title: subject.display_name, nav: 'caseload', subject, alerts: alerts.map((a) => ({ ...a, view: alertView(a as never) })), calendar, editableZones, ...map }));
    };
    app.get<{ Params: Params }>('/subjects/:id', { config: { roles: MANAGERS, session: true }, schema: { hide: true } }, async (request, reply) => withReason(request, reply, 'subject', showSubject));
    app.post<{ Params: Params }>('/subjects/:id/open', { config: { roles: ['supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => giveReason(request, reply, 'subject'));
  };
}

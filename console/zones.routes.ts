import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { userOf } from '../platform/http/auth.js';
import { audit } from '../registry/audit.repo.js';
import { getSubjectFor, type Subject } from '../registry/subjects.repo.js';
import { DAYS } from '../geofence/schedule.js';
import { listZones, type ZoneRow } from '../geofence/zones.repo.js';
import { createZone, removeZone, replaceZone, schemaProblems, type ZoneFeatureIn } from '../geofence/zones.service.js';
import type { ConsoleDeps } from './console.plugin.js';
import { emptyForm, errorsOf, featureOf, formCanShow, formFromZone, formOf, rowsOf, type FieldError, type ZoneForm } from './zones.form.js';

/**
 * Creating, changing and deleting a person's zones from the console (contract §3, §9): a GOV.UK
 * form that works without JavaScript (a map script fills the same fields). It goes through the
 * API's own code (geofence/zones.service.ts: the same schema, checks, storage and audit), for the
 * roles the API allows that change to a manager: offender managers, for their caseload.
 */
const ROLES = ['offender_manager'] as const;
const DAY_NAMES: Record<string, string> = { mon: 'Monday', tue: 'Tuesday', wed: 'Wednesday', thu: 'Thursday', fri: 'Friday', sat: 'Saturday', sun: 'Sunday' };

type Params = { id: string; zid?: string };
type Form = Record<string, unknown>;

export function zoneRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    // CSRF: the console plugin's one preHandler checks every non-GET session route

    const page = (request: FastifyRequest, data: Record<string, unknown>) => ({ ...data, user: request.user, csrf: request.consoleSession?.csrf ?? '' });
    const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) =>
      reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: `There is no ${what} with this reference in your caseload.` }));
    const subjectUrl = (s: Subject) => `/console/subjects/${encodeURIComponent(s.id)}`;

    /** The subject and its live zones (null: not in the caller's caseload); the zone asked for, when any. */
    const load = async (request: FastifyRequest<{ Params: Params }>) => {
      const subject = await getSubjectFor(pool, userOf(request), request.params.id);
      if (!subject) return null;
      const zones = await listZones(pool, subject.id);
      return { subject, zones, zone: request.params.zid ? (zones.find((z) => z.id === request.params.zid) ?? null) : null };
    };

    /** The form page; the person's other zones are drawn on its map, so the read is audited as the API audits a zone list. */
    const showForm = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, subject: Subject, zones: ZoneRow[], zone: ZoneRow | null, form: ZoneForm, errors: FieldError[] = []) => {
      const others = zones.filter((z) => z.id !== zone?.id);
      await audit(pool, request, { action: 'zone.list', subjectId: subject.id, detail: { via: 'console.zone-form', zone_ids: zones.map((z) => z.id) } });
      const errorFor: Record<string, string> = {};
      for (const e of errors) errorFor[e.id] ??= e.text;
      const blankWindow = () => ({ days: [] as string[], start: '', end: '' });
      return reply.code(errors.length ? 400 : 200).view('zones/edit.njk', page(request, {
        title: zone ? `Change the zone “${zone.name || 'unnamed'}”` : 'Add a zone',
        nav: 'caseload',
        subject,
        zone,
        action: zone ? `${subjectUrl(subject)}/zones/${zone.id}/edit` : `${subjectUrl(subject)}/zones/new`,
        back: subjectUrl(subject),
        form: { ...form, windows: rowsOf(form.windows, blankWindow), exceptions: rowsOf(form.exceptions, () => ({ from: '', to: '' })) },
        days: DAYS.map((d) => ({ value: d, text: DAY_NAMES[d] })),
        errors: errors.map((e) => ({ text: e.text, href: `#${e.id}` })),
        errorFor,
        mapData: { zones: others.map((z) => ({ id: z.id, name: z.name, kind: z.kind, geometry: z.geometry, radius_m: z.radius_m })) },
      }));
    };

    /** Builds the Feature from the form and runs the API's checks: the Feature, or the errors to show. */
    const check = (form: ZoneForm, subject: Subject): { feature: ZoneFeatureIn | null; errors: FieldError[] } => {
      const built = featureOf(form, subject.timezone);
      if (!built.feature) return built;
      const problems = schemaProblems(built.feature);
      return problems.length ? { feature: null, errors: errorsOf(problems, form.shape) } : built;
    };

    const opts = { config: { roles: ROLES, session: true }, schema: { hide: true } };

    app.get<{ Params: Params }>('/subjects/:id/zones/new', opts, async (request, reply) => {
      const found = await load(request);
      if (!found) return notFound(request, reply, 'person');
      return showForm(request, reply, found.subject, found.zones, null, emptyForm());
    });

    app.post<{ Params: Params }>('/subjects/:id/zones/new', opts, async (request, reply) => {
      const found = await load(request);
      if (!found) return notFound(request, reply, 'person');
      const form = formOf((request.body ?? {}) as Form);
      const { feature, errors } = check(form, found.subject);
      if (!feature) return showForm(request, reply, found.subject, found.zones, null, form, errors);
      const r = await createZone(pool, request, found.subject, feature, { via: 'console' });
      if (!r.ok) return showForm(request, reply, found.subject, found.zones, null, form, errorsOf(r.problems, form.shape));
      return reply.code(303).header('location', subjectUrl(found.subject)).send();
    });

    /** A zone of several polygons or with holes (made through the API) is not changed here: the form would lose its other rings. */
    const cannotShow = (request: FastifyRequest, reply: FastifyReply) =>
      reply.code(409).view('error.njk', page(request, { title: 'This zone cannot be changed here', message: 'Its shape has several polygons or holes, which the console cannot show in its form. Delete it and draw it again, or change it through the API.' }));

    app.get<{ Params: Params }>('/subjects/:id/zones/:zid/edit', opts, async (request, reply) => {
      const found = await load(request);
      if (!found) return notFound(request, reply, 'person');
      if (!found.zone) return notFound(request, reply, 'zone');
      if (!formCanShow(found.zone)) return cannotShow(request, reply);
      return showForm(request, reply, found.subject, found.zones, found.zone, formFromZone(found.zone, found.subject.timezone));
    });

    app.post<{ Params: Params }>('/subjects/:id/zones/:zid/edit', opts, async (request, reply) => {
      const found = await load(request);
      if (!found) return notFound(request, reply, 'person');
      if (!found.zone) return notFound(request, reply, 'zone');
      if (!formCanShow(found.zone)) return cannotShow(request, reply);
      const form = formOf((request.body ?? {}) as Form);
      const { feature, errors } = check(form, found.subject);
      if (!feature) return showForm(request, reply, found.subject, found.zones, found.zone, form, errors);
      const r = await replaceZone(pool, request, found.subject, found.zone.id, feature, { via: 'console' });
      if ('notFound' in r) return notFound(request, reply, 'zone');
      if (!r.ok) return showForm(request, reply, found.subject, found.zones, found.zone, form, errorsOf(r.problems, form.shape));
      return reply.code(303).header('location', subjectUrl(found.subject)).send();
    });

    app.get<{ Params: Params }>('/subjects/:id/zones/:zid/delete', opts, async (request, reply) => {
      const found = await load(request);
      if (!found) return notFound(request, reply, 'person');
      if (!found.zone) return notFound(request, reply, 'zone');
      await audit(pool, request, { action: 'zone.list', subjectId: found.subject.id, detail: { via: 'console.zone-delete', zone_ids: [found.zone.id] } });
      return reply.view('zones/delete.njk', page(request, { title: `Delete the zone “${found.zone.name || 'unnamed'}”`, nav: 'caseload', subject: found.subject, zone: found.zone, back: subjectUrl(found.subject) }));
    });

    app.post<{ Params: Params }>('/subjects/:id/zones/:zid/delete', opts, async (request, reply) => {
      const subject = await getSubjectFor(pool, userOf(request), request.params.id);
      if (!subject) return notFound(request, reply, 'person');
      if (!(await removeZone(pool, request, subject.id, request.params.zid ?? '', { via: 'console' }))) return notFound(request, reply, 'zone');
      return reply.code(303).header('location', subjectUrl(subject)).send();
    });
  };
}

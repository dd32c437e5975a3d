import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { audit, auditSubjects } from '../registry/audit.repo.js';
import { DateTimeIn, DeviceIdSchema } from '../platform/http/schemas.js';
import { DeviceBody, SubjectBody, SubjectChanges } from '../registry/registry.routes.js';
import { createSubject, endFitting, fitDevice, registerDevice, setDeviceActivity, updateSubject, type Failure } from '../registry/registry.service.js';
import { getSubjectFor, listAssignments, type Subject } from '../registry/subjects.repo.js';
import type { Device } from '../registry/devices.repo.js';
import { userOf } from '../platform/http/auth.js';
import { devicesForAdmin, subjectsForAdmin, unfittedDevices } from './admin.repo.js';
import { localNow, localToIso, optional, page, text, validate, type FieldError, type Form } from './admin-kit.js';
import type { ConsoleDeps } from './console.plugin.js';

const ADMIN = { config: { roles: ['admin'] as const, session: true }, schema: { hide: true } };
const LIST_MAX = 1000;
type Params = { id: string };
// the API's bodies of POST …/assignments and …/end, and its device id
const FitBody = Type.Object({ device_id: DeviceIdSchema, start: DateTimeIn });
const EndBody = Type.Object({ end: DateTimeIn });
const DeviceParam = Type.Object({ id: DeviceIdSchema });

const DEVICE_MESSAGES = {
  id: 'Enter a device ID of 3 to 64 letters, digits, hyphens or underscores (the tag serial)',
  kind: 'Select the kind of device',
};
const SUBJECT_MESSAGES = {
  id: 'Enter an ID of 1 to 64 letters, digits, hyphens or underscores',
  display_name: 'Enter a display name (at most 200 characters)',
  cohort: 'Select a cohort',
  rag: 'Select a risk (RAG) rating',
  timezone: 'Enter an IANA time zone, for example Europe/London',
  offender_manager_ids: 'Enter at most 50 offender manager user IDs, each at most 128 characters',
};
const FIT_MESSAGES = { device_id: 'Select or enter the device to fit', start: 'Enter the start as a date and time' };

/** Offender manager user ids from a form field: separated by commas, spaces or new lines. */
const managerIds = (raw: string): string[] => raw.split(/[\s,]+/).filter((s) => s !== '');

/** The API's failure as an error on the form field it is about. */
const failureOn = (f: { detail: string }, field: string): FieldError[] => [{ text: f.detail.charAt(0).toUpperCase() + f.detail.slice(1), href: `#${field.replace(/_/g, '-')}` }];

/**
 * The admin's registry pages (issue 11 §7): devices (list, register with the MQTT password shown
 * once, deactivate/activate), subjects (list, create, edit) and fittings (fit, end), through the
 * API's own service functions (registry/registry.service.ts), validation and audit.
 */
export function adminRegistryRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  const broker = deps.admin?.broker ?? null;
  return async (app: FastifyInstance): Promise<void> => {

    // ---- devices
    const deviceList = async (request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}) => {
      const rows = await devicesForAdmin(pool, LIST_MAX);
      // the list shows who wears which device: one audit row per person shown
      const worn = new Map(rows.filter((d) => d.subject_id).map((d) => [d.subject_id!, { via: 'console.admin.devices', device_id: d.id }]));
      await auditSubjects(pool, request, 'device.list', worn, { count: rows.length });
      return reply.view('admin/devices.njk', page(request, { title: 'Devices', nav: 'devices', rows, truncated: rows.length === LIST_MAX, ...extra }));
    };
    app.get('/admin/devices', ADMIN, async (request, reply) => deviceList(request, reply));
    app.get('/admin/devices/new', ADMIN, async (request, reply) => reply.view('admin/device-new.njk', page(request, { title: 'Register a device', nav: 'devices', values: {} })));
    app.post('/admin/devices', ADMIN, async (request, reply) => {
      const form = request.body as Form;
      const body = { id: text(form, 'id'), kind: text(form, 'kind') };
      const again = (errors: FieldError[]) => reply.code(400).view('admin/device-new.njk', page(request, { title: 'Register a device', nav: 'devices', values: body, errors }));
      const errors = validate(request, DeviceBody, body, DEVICE_MESSAGES);
      if (errors.length) return again(errors);
      const r = await registerDevice(pool, broker, request, body as { id: string; kind: Device['kind'] });
      if (!r.ok) return r.status === 503 ? reply.code(503).view('error.njk', page(request, { title: 'The device was not registered', message: r.detail })) : again(failureOn(r, 'id'));
      // the password exists only in this response: never stored (a hash is), never cached, never shown again
      return reply.code(201).view('admin/device-registered.njk', page(request, { title: 'Device registered', nav: 'devices', device: r.device, password: r.password }));
    });
    app.post<{ Params: Params }>('/admin/devices/:id/active', ADMIN, async (request, reply) => {
      const active = text(request.body as Form, 'active') === 'yes';
      const device = validate(request, DeviceParam, { id: request.params.id }, {}).length ? null : await setDeviceActivity(pool, broker, request, request.params.id, active);
      if (!device) return reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: 'There is no device with this ID.' }));
      return reply.code(303).header('location', '/console/admin/devices').send();
    });

    // ---- subjects
    app.get('/admin/subjects', ADMIN, async (request, reply) => {
      const rows = await subjectsForAdmin(pool, LIST_MAX);
      await auditSubjects(pool, request, 'subject.list', new Map(rows.map((s) => [s.id, { via: 'console.admin.subjects' }])), { count: rows.length });
      return reply.view('admin/subjects.njk', page(request, { title: 'Subjects', nav: 'subjects', rows, truncated: rows.length === LIST_MAX }));
    });
    app.get('/admin/subjects/new', ADMIN, async (request, reply) =>
      reply.view('admin/subject-new.njk', page(request, { title: 'Add a subject', nav: 'subjects', values: { timezone: 'Europe/London', managers: '' } })));
    app.post('/admin/subjects', ADMIN, async (request, reply) => {
      const form = request.body as Form;
      const body = { id: text(form, 'id'), display_name: text(form, 'display_name'), cohort: text(form, 'cohort'), rag: text(form, 'rag'), timezone: text(form, 'timezone') || 'Europe/London', offender_manager_ids: managerIds(text(form, 'managers')) };
      const again = (errors: FieldError[]) => reply.code(400).view('admin/subject-new.njk', page(request, { title: 'Add a subject', nav: 'subjects', values: { ...body, managers: text(form, 'managers') }, errors }));
      const errors = validate(request, SubjectBody, body, SUBJECT_MESSAGES);
      if (errors.length) return again(errors);
      const r = await createSubject(pool, request, body as Omit<Subject, 'created_at'>);
      if (!r.ok) return again(failureOn(r, r.status === 409 ? 'id' : 'timezone'));
      return reply.code(303).header('location', `/console/admin/subjects/${encodeURIComponent(r.subject.id)}`).send();
    });

    /** The subject's page: details, the edit form, fittings and the fit form (the read is audited, as the API's). */
    const subjectPage = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, status: number, extra: { values?: Record<string, unknown>; errors?: FieldError[]; fitValues?: Record<string, unknown>; fitErrors?: FieldError[] } = {}) => {
      const subject = await getSubjectFor(pool, userOf(request), request.params.id);
      if (!subject) return reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: 'There is no subject with this ID.' }));
      const fittings = await listAssignments(pool, subject.id);
      await audit(pool, request, { action: 'subject.read', subjectId: subject.id, detail: { via: 'console.admin', fittings: fittings.length } });
      const values = extra.values ?? { ...subject, managers: subject.offender_manager_ids.join(', ') };
      const fitValues = extra.fitValues ?? { device_id: '', start: localNow(subject.timezone) };
      return reply.code(status).view('admin/subject.njk', page(request, { title: subject.display_name, nav: 'subjects', subject, values, fittings: fittings.slice().reverse(), devices: await unfittedDevices(pool), fitValues, now: localNow(subject.timezone), saved: (request.query as Form | undefined)?.saved === '1', errors: extra.errors ?? extra.fitErrors, editErrors: extra.errors, fitErrors: extra.fitErrors }));
    };
    app.get<{ Params: Params }>('/admin/subjects/:id', ADMIN, async (request, reply) => subjectPage(request, reply, 200));
    app.post<{ Params: Params }>('/admin/subjects/:id', ADMIN, async (request, reply) => {
      const form = request.body as Form;
      const changes = { display_name: text(form, 'display_name'), cohort: text(form, 'cohort'), rag: text(form, 'rag'), timezone: text(form, 'timezone'), offender_manager_ids: managerIds(text(form, 'managers')) };
      const values = { ...changes, managers: text(form, 'managers') };
      const errors = validate(request, SubjectChanges, changes, SUBJECT_MESSAGES);
      if (errors.length) return subjectPage(request, reply, 400, { values, errors });
      const r = await updateSubject(pool, request, request.params.id, changes as Partial<Subject>);
      if (!r.ok) return r.status === 404 ? subjectPage(request, reply, 404) : subjectPage(request, reply, 400, { values, errors: failureOn(r, 'timezone') });
      return reply.code(303).header('location', `/console/admin/subjects/${encodeURIComponent(r.subject.id)}?saved=1`).send();
    });

    // ---- fittings
    app.post<{ Params: Params }>('/admin/subjects/:id/fittings', ADMIN, async (request, reply) => {
      const form = request.body as Form;
      const subject = await getSubjectFor(pool, userOf(request), request.params.id);
      const zone = subject?.timezone ?? 'Europe/London';
      const body = { device_id: optional(form, 'device_id') ?? '', start: localToIso(text(form, 'start'), zone) };
      const fitValues = { device_id: body.device_id, start: text(form, 'start') };
      const errors = validate(request, FitBody, body, FIT_MESSAGES);
      if (errors.length) return subjectPage(request, reply, 400, { fitValues, fitErrors: errors });
      const r = await fitDevice(pool, request, request.params.id, body.device_id, new Date(body.start));
      if (!r.ok) return r.reason === 'no_subject' ? subjectPage(request, reply, 404) : subjectPage(request, reply, r.reason === 'overlap' ? 409 : 400, { fitValues, fitErrors: failureOn(r, 'device_id') });
      return reply.code(303).header('location', `/console/admin/subjects/${encodeURIComponent(request.params.id)}`).send();
    });
    app.post<{ Params: Params & { aid: string } }>('/admin/subjects/:id/fittings/:aid/end', ADMIN, async (request, reply) => {
      const subject = await getSubjectFor(pool, userOf(request), request.params.id);
      const end = localToIso(text(request.body as Form, 'end') || localNow(subject?.timezone ?? 'Europe/London'), subject?.timezone ?? 'Europe/London');
      const bad = validate(request, EndBody, { end }, { end: 'Enter the end as a date and time' });
      const r: Failure | Awaited<ReturnType<typeof endFitting>> = bad.length ? { ok: false, status: 400, detail: bad[0]!.text } : await endFitting(pool, request, request.params.id, request.params.aid, new Date(end));
      if (!r.ok) {
        if (r.status === 404) return reply.code(404).view('error.njk', page(request, { title: 'Page not found', message: 'There is no such fitting for this subject.' }));
        return subjectPage(request, reply, r.status, { fitErrors: [{ text: r.detail.charAt(0).toUpperCase() + r.detail.slice(1), href: `#end-${request.params.aid}` }] });
      }
      return reply.code(303).header('location', `/console/admin/subjects/${encodeURIComponent(request.params.id)}`).send();
    });
  };
}

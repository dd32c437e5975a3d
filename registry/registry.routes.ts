import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { IANAZone } from 'luxon';
import { rollbackWith, withTransaction, type Pool } from '../platform/db.js';
import { NotADeviceError, type BrokerAdmin } from './dynsec.js';
import { audit, auditSubjects } from './audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { DateTimeIn, DateTimeOut, DeviceIdSchema, RefId } from '../platform/http/schemas.js';
import { getDevice, insertDevice, newDevicePassword, setDeviceActive } from './devices.repo.js';
import { assignDevice, endAssignment, getSubjectFor, insertSubject, listAssignments, listSubjectsFor } from './subjects.repo.js';

const Id = RefId;
const DeviceId = DeviceIdSchema;
const DateTime = DateTimeOut;

const DeviceBody = Type.Object(
  { id: DeviceId, kind: Type.Union([Type.Literal('gps'), Type.Literal('alcohol'), Type.Literal('combined')]) },
  { additionalProperties: false },
);
const Device = Type.Object({ id: Type.String(), kind: Type.String(), active: Type.Boolean(), created_at: DateTime });
const SubjectBody = Type.Object(
  {
    id: Id,
    display_name: Type.String({ minLength: 1, maxLength: 200 }),
    cohort: Type.Union([Type.Literal('fixed'), Type.Literal('flex'), Type.Literal('free')]),
    rag: Type.Union([Type.Literal('red'), Type.Literal('amber'), Type.Literal('green')]),
    timezone: Type.String({ default: 'Europe/London', description: 'IANA time zone' }),
    offender_manager_ids: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { default: [], maxItems: 50 }),
  },
  { additionalProperties: false },
);
const Subject = Type.Object({
  id: Type.String(),
  display_name: Type.String(),
  cohort: Type.String(),
  rag: Type.String(),
  timezone: Type.String(),
  offender_manager_ids: Type.Array(Type.String()),
  created_at: DateTime,
});
const Assignment = Type.Object({
  id: Type.String(),
  subject_id: Type.String(),
  device_id: Type.String(),
  start: DateTime,
  end: Type.Union([DateTime, Type.Null()]),
});
const SubjectParams = Type.Object({ id: Id });

/** Devices, subjects and assignments (contract §2). */
export function registryRoutes(pool: Pool, broker: BrokerAdmin | null): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/v1/devices',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'registerDevice',
          tags: ['devices'],
          summary: 'Register a device; the 201 body carries its MQTT password, once',
          body: DeviceBody,
          response: { 201: Type.Intersect([Device, Type.Object({ mqtt_password: Type.String() })]) },
        },
      },
      async (request, reply) => {
        // the broker's own accounts share the namespace of device ids (the MQTT username)
        if (broker?.serviceAccounts.includes(request.body.id)) {
          return problem(reply, 409, 'Conflict', `${request.body.id} is one of the service's broker accounts, not a device id`);
        }
        const { password, hash } = newDevicePassword();
        let device;
        try {
          device = await withTransaction(pool, async (tx) => {
            const d = await insertDevice(tx, { ...request.body, passwordHash: hash });
            if (!d) return rollbackWith(null);
            // the broker learns the device (and its password) before the registration commits
            await broker?.provisionDevice(d.id, password);
            return d;
          });
        } catch (err) {
          if (err instanceof NotADeviceError) return problem(reply, 409, 'Conflict', `${err.message}; nothing was registered`);
          request.log.error({ err: (err as Error).message, device: request.body.id }, 'device registration failed');
          return problem(reply, 503, 'Service Unavailable', 'the device could not be provisioned at the broker; nothing was registered');
        }
        if (!device) return problem(reply, 409, 'Conflict', `device ${request.body.id} is already registered`);
        await audit(pool, request, { action: 'device.create', detail: { device_id: device.id } });
        return reply.code(201).send({ ...device, mqtt_password: password });
      },
    );

    app.get(
      '/v1/devices/:id',
      { config: { roles: ['admin'] }, schema: { operationId: 'getDevice', summary: 'A device', tags: ['devices'], params: Type.Object({ id: DeviceId }), response: { 200: Device } } },
      async (request, reply) => {
        const device = await getDevice(pool, request.params.id);
        return device ?? problem(reply, 404, 'Not Found', `device ${request.params.id} not found`);
      },
    );

    app.patch(
      '/v1/devices/:id',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'updateDevice',
          tags: ['devices'],
          summary: 'Activate or deactivate a device (an inactive device’s telemetry is rejected)',
          params: Type.Object({ id: DeviceId }),
          body: Type.Object({ active: Type.Boolean() }, { additionalProperties: false }),
          response: { 200: Device },
        },
      },
      async (request, reply) => {
        const device = await setDeviceActive(pool, request.params.id, request.body.active);
        if (!device) return problem(reply, 404, 'Not Found', `device ${request.params.id} not found`);
        // deactivating revokes the device at the broker: it can no longer connect
        await broker?.setDeviceEnabled(device.id, request.body.active);
        await audit(pool, request, { action: request.body.active ? 'device.activate' : 'device.deactivate', detail: { device_id: device.id } });
        return device;
      },
    );

    app.post(
      '/v1/subjects',
      { config: { roles: ['admin'] }, schema: { operationId: 'createSubject', summary: 'Create a subject', tags: ['subjects'], body: SubjectBody, response: { 201: Subject } } },
      async (request, reply) => {
        const body = request.body;
        if (!IANAZone.isValidZone(body.timezone)) return problem(reply, 400, 'Bad Request', `timezone ${body.timezone} is not an IANA time zone`);
        const subject = await insertSubject(pool, body);
        if (!subject) return problem(reply, 409, 'Conflict', `subject ${body.id} already exists`);
        await audit(pool, request, { action: 'subject.create', subjectId: subject.id });
        return reply.code(201).send(subject);
      },
    );

    app.get(
      '/v1/subjects/:id',
      {
        config: { roles: ['admin', 'supervisor', 'offender_manager'], reasonRequired: supervisorReadsOneSubject },
        schema: { operationId: 'getSubject', summary: 'A subject (the read is audited)', tags: ['subjects'], params: SubjectParams, response: { 200: Subject } },
      },
      async (request, reply) => {
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        await audit(pool, request, { action: 'subject.read', subjectId: subject.id });
        return subject;
      },
    );

    app.get(
      '/v1/subjects',
      {
        config: { roles: ['admin', 'supervisor', 'offender_manager'] },
        schema: {
          operationId: 'listSubjects',
          tags: ['subjects'],
          summary: 'Subjects the caller may see (an offender manager: their caseload), by id',
          querystring: Type.Object(
            { limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }), after: Type.Optional(Id) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ items: Type.Array(Subject), next_after: Type.Union([Type.String(), Type.Null()]) }) },
        },
      },
      async (request) => {
        const items = await listSubjectsFor(pool, userOf(request), request.query.limit, request.query.after ?? null);
        await auditSubjects(pool, request, 'subject.list', new Map(items.map((s) => [s.id, {}])), { count: items.length });
        return { items, next_after: items.length === request.query.limit ? items[items.length - 1]!.id : null };
      },
    );

    app.post(
      '/v1/subjects/:id/assignments',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'createAssignment',
          summary: 'Fit a device to a subject from a start time',
          tags: ['assignments'],
          params: SubjectParams,
          body: Type.Object({ device_id: DeviceId, start: DateTimeIn }, { additionalProperties: false }),
          response: { 201: Assignment },
        },
      },
      async (request, reply) => {
        const r = await assignDevice(pool, request.params.id, request.body.device_id, new Date(request.body.start));
        if (!r.ok) return problem(reply, r.reason === 'overlap' ? 409 : 404, r.reason === 'overlap' ? 'Conflict' : 'Not Found', r.detail);
        await audit(pool, request, { action: 'assignment.create', subjectId: request.params.id, detail: { device_id: request.body.device_id } });
        return reply.code(201).send(r.assignment);
      },
    );

    app.get(
      '/v1/subjects/:id/assignments',
      {
        config: { roles: ['admin', 'supervisor', 'offender_manager'], reasonRequired: supervisorReadsOneSubject },
        schema: { operationId: 'listAssignments', summary: 'A subject’s device assignments', tags: ['assignments'], params: SubjectParams, response: { 200: Type.Object({ items: Type.Array(Assignment) }) } },
      },
      async (request, reply) => {
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const items = await listAssignments(pool, subject.id);
        await audit(pool, request, { action: 'assignment.list', subjectId: subject.id, detail: { count: items.length } });
        return { items };
      },
    );

    app.post(
      '/v1/subjects/:id/assignments/:aid/end',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'endAssignment',
          summary: 'End an assignment (the device is taken off)',
          tags: ['assignments'],
          params: Type.Object({ id: Id, aid: Type.String({ maxLength: 20 }) }),
          body: Type.Object({ end: DateTimeIn }, { additionalProperties: false }),
          response: { 200: Assignment },
        },
      },
      async (request, reply) => {
        const r = await endAssignment(pool, request.params.id, request.params.aid, new Date(request.body.end));
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        await audit(pool, request, { action: 'assignment.end', subjectId: request.params.id, detail: { assignment_id: r.assignment.id } });
        return r.assignment;
      },
    );
  };
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pool } from '../platform/db.js';
import type { BrokerAdmin } from './dynsec.js';
import { audit, auditSubjects } from './audit.repo.js';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { DateTimeIn, DateTimeOut, DeviceIdSchema, RefId } from '../platform/http/schemas.js';
import { getDevice } from './devices.repo.js';
import { getSubjectFor, listAssignments, listSubjectsFor } from './subjects.repo.js';
import { createSubject, endFitting, fitDevice, registerDevice, setDeviceActivity, updateSubject } from './registry.service.js';

const Id = RefId;
const DeviceId = DeviceIdSchema;
const DateTime = DateTimeOut;

export const DeviceBody = Type.Object(
  { id: DeviceId, kind: Type.Union([Type.Literal('gps'), Type.Literal('alcohol'), Type.Literal('combined')]) },
  { additionalProperties: false },
);
const Device = Type.Object({ id: Type.String(), kind: Type.String(), active: Type.Boolean(), created_at: DateTime });
const Cohort = Type.Union([Type.Literal('fixed'), Type.Literal('flex'), Type.Literal('free')]);
const Rag = Type.Union([Type.Literal('red'), Type.Literal('amber'), Type.Literal('green')]);
const DisplayName = Type.String({ minLength: 1, maxLength: 200 });
const ManagerIds = (opts: object) => Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 50, ...opts });
export const SubjectBody = Type.Object(
  {
    id: Id,
    display_name: DisplayName,
    cohort: Cohort,
    rag: Rag,
    timezone: Type.String({ default: 'Europe/London', description: 'IANA time zone' }),
    offender_manager_ids: ManagerIds({ default: [] }),
  },
  { additionalProperties: false },
);
/** PATCH /v1/subjects/{id}: the fields to change, at least one (no defaults: a field not given is not changed; the id never changes). */
export const SubjectChanges = Type.Object(
  {
    display_name: Type.Optional(DisplayName),
    cohort: Type.Optional(Cohort),
    rag: Type.Optional(Rag),
    timezone: Type.Optional(Type.String({ description: 'IANA time zone' })),
    offender_manager_ids: Type.Optional(ManagerIds({})),
  },
  { additionalProperties: false, minProperties: 1 },
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
        const r = await registerDevice(pool, broker, request, request.body);
        if (!r.ok) return problem(reply, r.status, r.status === 409 ? 'Conflict' : 'Service Unavailable', r.detail);
        return reply.code(201).send({ ...r.device, mqtt_password: r.password });
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
        const device = await setDeviceActivity(pool, broker, request, request.params.id, request.body.active);
        return device ?? problem(reply, 404, 'Not Found', `device ${request.params.id} not found`);
      },
    );

    app.post(
      '/v1/subjects',
      { config: { roles: ['admin'] }, schema: { operationId: 'createSubject', summary: 'Create a subject', tags: ['subjects'], body: SubjectBody, response: { 201: Subject } } },
      async (request, reply) => {
        const r = await createSubject(pool, request, request.body);
        if (!r.ok) return problem(reply, r.status, r.status === 409 ? 'Conflict' : 'Bad Request', r.detail);
        return reply.code(201).send(r.subject);
      },
    );

    app.patch(
      '/v1/subjects/:id',
      {
        config: { roles: ['admin'] },
        schema: {
          operationId: 'updateSubject',
          summary: 'Change a subject’s display name, cohort, RAG, time zone or offender managers (the fields given)',
          tags: ['subjects'],
          params: SubjectParams,
          body: SubjectChanges,
          response: { 200: Subject },
        },
      },
      async (request, reply) => {
        const r = await updateSubject(pool, request, request.params.id, request.body);
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Bad Request', r.detail);
        return r.subject;
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
        const r = await fitDevice(pool, request, request.params.id, request.body.device_id, new Date(request.body.start));
        if (!r.ok) return problem(reply, r.reason === 'overlap' ? 409 : 404, r.reason === 'overlap' ? 'Conflict' : 'Not Found', r.detail);
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
        const r = await endFitting(pool, request, request.params.id, request.params.aid, new Date(request.body.end));
        if (!r.ok) return problem(reply, r.status, r.status === 404 ? 'Not Found' : 'Conflict', r.detail);
        return r.assignment;
      },
    );
  };
}

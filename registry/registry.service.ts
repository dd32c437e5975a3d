import type { FastifyRequest } from 'fastify';
import { IANAZone } from 'luxon';
import { rollbackWith, withTransaction, type Pool } from '../platform/db.js';
import { NotADeviceError, type BrokerAdmin } from './dynsec.js';
import { audit } from './audit.repo.js';
import { insertDevice, newDevicePassword, setDeviceActive, type Device } from './devices.repo.js';
import { assignDevice, endAssignment, insertSubject, updateSubjectRow, type AssignResult, type EndResult, type Subject } from './subjects.repo.js';

/**
 * The registry's changes (contract §2) as the API and the console both make them: the same
 * checks, broker provisioning and audit rows, whoever calls. Failures carry the HTTP status the
 * API answers with and a sentence for the person.
 */
export type Failure = { ok: false; status: 400 | 404 | 409 | 503; detail: string };

/** Registers a device and provisions it at the broker; its MQTT password is returned here once and stored only as a hash. */
export async function registerDevice(
  pool: Pool,
  broker: BrokerAdmin | null,
  request: FastifyRequest,
  body: { id: string; kind: Device['kind'] },
): Promise<{ ok: true; device: Device; password: string } | Failure> {
  // the broker's own accounts share the namespace of device ids (the MQTT username)
  if (broker?.serviceAccounts.includes(body.id)) return { ok: false, status: 409, detail: `${body.id} is one of the service's broker accounts, not a device id` };
  const { password, hash } = newDevicePassword();
  let device: Device | null;
  try {
    device = await withTransaction(pool, async (tx) => {
      const d = await insertDevice(tx, { ...body, passwordHash: hash });
      if (!d) return rollbackWith(null);
      // the broker learns the device (and its password) before the registration commits
      await broker?.provisionDevice(d.id, password);
      return d;
    });
  } catch (err) {
    if (err instanceof NotADeviceError) return { ok: false, status: 409, detail: `${err.message}; nothing was registered` };
    request.log.error({ err: (err as Error).message, device: body.id }, 'device registration failed');
    return { ok: false, status: 503, detail: 'the device could not be provisioned at the broker; nothing was registered' };
  }
  if (!device) return { ok: false, status: 409, detail: `device ${body.id} is already registered` };
  await audit(pool, request, { action: 'device.create', detail: { device_id: device.id } });
  return { ok: true, device, password };
}

/** Activates or deactivates a device (deactivating revokes it at the broker); null when there is no such device. */
export async function setDeviceActivity(pool: Pool, broker: BrokerAdmin | null, request: FastifyRequest, id: string, active: boolean): Promise<Device | null> {
  const device = await setDeviceActive(pool, id, active);
  if (!device) return null;
  await broker?.setDeviceEnabled(device.id, active);
  await audit(pool, request, { action: active ? 'device.activate' : 'device.deactivate', detail: { device_id: device.id } });
  return device;
}

const badZone = (tz: string): Failure => ({ ok: false, status: 400, detail: `timezone ${tz} is not an IANA time zone` });

export async function createSubject(pool: Pool, request: FastifyRequest, body: Omit<Subject, 'created_at'>): Promise<{ ok: true; subject: Subject } | Failure> {
  if (!IANAZone.isValidZone(body.timezone)) return badZone(body.timezone);
  const subject = await insertSubject(pool, body);
  if (!subject) return { ok: false, status: 409, detail: `subject ${body.id} already exists` };
  await audit(pool, request, { action: 'subject.create', subjectId: subject.id });
  return { ok: true, subject };
}

/** Changes the given fields of a subject; the audit row names the fields changed (not their values). */
export async function updateSubject(pool: Pool, request: FastifyRequest, id: string, changes: Partial<Omit<Subject, 'id' | 'created_at'>>): Promise<{ ok: true; subject: Subject } | Failure> {
  if (changes.timezone !== undefined && !IANAZone.isValidZone(changes.timezone)) return badZone(changes.timezone);
  const subject = await updateSubjectRow(pool, id, changes);
  if (!subject) return { ok: false, status: 404, detail: `subject ${id} not found` };
  await audit(pool, request, { action: 'subject.update', subjectId: id, detail: { fields: Object.keys(changes).sort() } });
  return { ok: true, subject };
}

/** Fits a device to a subject from `start` (open-ended). */
export async function fitDevice(pool: Pool, request: FastifyRequest, subjectId: string, deviceId: string, start: Date): Promise<AssignResult> {
  const r = await assignDevice(pool, subjectId, deviceId, start);
  if (r.ok) await audit(pool, request, { action: 'assignment.create', subjectId, detail: { device_id: deviceId } });
  return r;
}

/** Ends a fitting at `end` (the device is taken off). */
export async function endFitting(pool: Pool, request: FastifyRequest, subjectId: string, assignmentId: string, end: Date): Promise<EndResult> {
  const r = await endAssignment(pool, subjectId, assignmentId, end);
  if (r.ok) await audit(pool, request, { action: 'assignment.end', subjectId, detail: { assignment_id: r.assignment.id } });
  return r;
}

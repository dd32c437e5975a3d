import type { FastifyInstance } from 'fastify';
import { listRejections, RejectionQuerySchema } from '../ingest/readings.routes.js';
import { AuditQuerySchema, searchAudit } from '../registry/audit.routes.js';
import { localToIso, optional, page, validate, type Form } from './admin-kit.js';
import type { ConsoleDeps } from './console.plugin.js';

const ADMIN = { config: { roles: ['admin'] as const, session: true }, schema: { hide: true } };
const PAGE = 50;
/** The audit search's period is entered in UK time (the console's default zone). */
const ZONE = 'Europe/London';

/** Keeps the non-empty fields of a filter for the "older" link. */
const queryString = (q: Record<string, string | undefined>) => new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => !!e[1])).toString();

/**
 * Ingest's rejected messages and the audit search for admins (issue 11 §7), through the API's
 * functions and query schemas (ingest/readings.routes.ts listRejections, registry/audit.routes.ts
 * searchAudit): both reads are audited as on the API; newest first, 50 a page.
 */
export function adminLogRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {

    app.get('/admin/rejections', ADMIN, async (request, reply) => {
      const raw = request.query as Form;
      const filter = { device_id: optional(raw, 'device_id'), reason: optional(raw, 'reason') };
      const q = { ...filter, before: optional(raw, 'before'), limit: PAGE };
      const errors = validate(request, RejectionQuerySchema, q, { device_id: 'Enter a device ID of letters, digits, hyphens or underscores', reason: 'Enter the start of a reason (at most 64 characters)', before: 'The page link is not valid: start again from the first page' });
      if (errors.length) return reply.code(400).view('admin/rejections.njk', page(request, { title: 'Rejected telemetry', nav: 'rejections', filter, errors, items: [] }));
      const r = await listRejections(pool, request, q);
      const older = r.next_before ? `/console/admin/rejections?${queryString({ ...filter, before: r.next_before })}` : null;
      return reply.view('admin/rejections.njk', page(request, { title: 'Rejected telemetry', nav: 'rejections', filter, items: r.items, older, first: !q.before }));
    });

    app.get('/admin/audit', ADMIN, async (request, reply) => {
      const raw = request.query as Form;
      const filter = { actor: optional(raw, 'actor'), subject_id: optional(raw, 'subject_id'), action: optional(raw, 'action'), from: optional(raw, 'from'), to: optional(raw, 'to') };
      const searched = Object.values(filter).some((v) => v !== undefined) || raw.search === '1';
      if (!searched) return reply.view('admin/audit.njk', page(request, { title: 'Audit search', nav: 'audit', filter, searched }));
      const q = { ...filter, from: filter.from && localToIso(filter.from, ZONE), to: filter.to && localToIso(filter.to, ZONE), before: optional(raw, 'before'), limit: PAGE };
      const errors = validate(request, AuditQuerySchema, q, {
        actor: 'Enter a user ID of at most 128 characters',
        subject_id: 'Enter a subject ID of 1 to 64 letters, digits, hyphens or underscores',
        action: 'Enter an action like subject.read (lower-case letters, dots and underscores)',
        from: 'Enter the start of the period as a date and time',
        to: 'Enter the end of the period as a date and time',
        before: 'The page link is not valid: start again from the first page',
      });
      if (!errors.length && q.from && q.to && !(new Date(q.from) < new Date(q.to))) errors.push({ text: 'The end of the period must be after its start', href: '#to' });
      if (errors.length) return reply.code(400).view('admin/audit.njk', page(request, { title: 'Audit search', nav: 'audit', filter, searched, errors, items: [] }));
      const r = await searchAudit(pool, request, q, 'console.audit');
      const older = r.next_before ? `/console/admin/audit?${queryString({ ...filter, search: '1', before: r.next_before })}` : null;
      return reply.view('admin/audit.njk', page(request, { title: 'Audit search', nav: 'audit', filter, searched, items: r.items.map((i) => ({ ...i, detailText: JSON.stringify(i.detail) })), older, first: !q.before }));
    });
  };
}

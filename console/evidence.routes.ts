import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DateTime } from 'luxon';
import { userOf } from '../platform/http/auth.js';
import { parseReason } from '../platform/http/reason.js';
import { audit } from '../registry/audit.repo.js';
import type { ConsoleDeps } from './console.plugin.js';
import { companions, sha256 } from './evidence.files.js';
import { buildEvidencePdf } from './evidence.pdf.js';
import { alertPackSource, matchPackSource, PERIOD_MAX_MS, periodPackSource, type PackSource } from './evidence.repo.js';
import { alertView, displayTime, lateText } from './present.js';

/**
 * Evidence packs (issue 11 §8): a PDF with its companion CSV and GeoJSON, for an alert, a
 * subject's period and a crime match. Read through the caseload filter (another manager's alert
 * is a 404); supervisors state a reason (a POST form; it lands in the audit row). Every export
 * is audited: `evidence.pdf`, `evidence.csv`, `evidence.geojson`, with the files' SHA-256.
 */

type Form = Record<string, unknown>;
export const FORMATS = ['pdf', 'csv', 'geojson'] as const;
export type Format = (typeof FORMATS)[number];

/** The CSRF check of every console change (as pages.routes.ts): registered in each console routes plugin. */
export const pageOf = (request: FastifyRequest, data: Record<string, unknown>) => ({ ...data, user: request.user, csrf: request.consoleSession?.csrf ?? '' });

export interface PackText {
  title: string;
  summary: Array<[string, string]>;
  late: string | null;
  /** file names: `${base}.pdf`, `.csv`, `.geojson` */
  base: string;
  detail: Record<string, unknown>;
}

/** Builds the asked file of a pack, audits it with its SHA-256 (and the companions' for the PDF), sends it as a download. */
export async function sendPack(deps: ConsoleDeps, request: FastifyRequest, reply: FastifyReply, src: PackSource, text: PackText, format: Format): Promise<FastifyReply> {
  const user = userOf(request);
  const files = companions(src.data, text.base);
  let body: Buffer;
  let type: string;
  const detail: Record<string, unknown> = { ...text.detail, via: 'console', fixes: src.data.fixes.length };
  if (format === 'pdf') {
    body = await buildEvidencePdf({
      title: text.title,
      data: src.data,
      summary: text.summary,
      late: text.late,
      versions: src.versions,
      notes: src.notes,
      generatedAt: new Date(),
      generatedBy: `${user.id} (${user.role.replace('_', ' ')})`,
      csv: files.csv,
      geojson: files.geojson,
    });
    type = 'application/pdf';
    Object.assign(detail, { csv_sha256: files.csv.sha256, geojson_sha256: files.geojson.sha256 });
  } else {
    body = Buffer.from(files[format].body, 'utf8');
    type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/geo+json; charset=utf-8';
  }
  detail.sha256 = sha256(body);
  await audit(deps.pool, request, { action: `evidence.${format}`, subjectId: src.subjectId, detail });
  return reply.type(type).header('content-disposition', `attachment; filename="${text.base}.${format}"`).send(body);
}

const formatOf = (v: unknown): Format => (FORMATS.includes(v as Format) ? (v as Format) : 'pdf');

export function evidenceRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) =>
      reply.code(404).view('error.njk', pageOf(request, { title: 'Page not found', message: `There is no ${what} with this reference in your caseload.` }));
    const badReason = (request: FastifyRequest, reply: FastifyReply, message: string) => reply.code(400).view('error.njk', pageOf(request, { title: 'Give a reason for this export', message }));
    /** A supervisor's reason from the form: set on the request (the audit row carries it), or what is wrong with it. */
    const takeReason = (request: FastifyRequest): string | null => {
      const parsed = parseReason(String((request.body as Form | undefined)?.reason ?? ''));
      if ('problem' in parsed) return `The reason ${parsed.problem}. Go back and give a reason for this export.`;
      request.reason = parsed.reason;
      return null;
    };

    const alertPack = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, format: Format) => {
      const src = await alertPackSource(pool, userOf(request), request.params.id);
      if (!src) return notFound(request, reply, 'alert');
      const a = src.alert;
      const v = alertView(a as never);
      return sendPack(deps, request, reply, src, {
        title: `Evidence pack: ${v.typeName}`,
        base: `alert-${a.id as string}`,
        late: lateText(a as never),
        summary: [
          ['Alert', `${v.typeName} (${a.type as string}), id ${a.id as string}`],
          ['Severity', v.severityText],
          ['Status', `${v.statusText}${a.false_alarm ? ' (false alarm)' : ''}`],
          ['Device', (a.device_id as string | null) ?? 'None'],
          ['Started (device time)', displayTime(a.started_at)],
          ['Raised (received time)', displayTime(a.raised_at)],
          ['Ended', displayTime(a.ended_at) || 'Not ended'],
          ['Raised late', a.late ? 'Yes (see below)' : 'No: raised as the readings arrived'],
          ['History', (a.history as Array<{ action: string; at: Date; actor: string | null }>).map((h) => `${h.action} ${displayTime(h.at)}${h.actor ? ` by ${h.actor}` : ''}`).join('; ')],
        ],
        detail: { alert_id: a.id },
      }, format);
    };
    for (const format of FORMATS) {
      app.get<{ Params: { id: string } }>(`/alerts/:id/evidence.${format}`, { config: { roles: ['offender_manager'], session: true }, schema: { hide: true } }, (request, reply) => alertPack(request, reply, format));
    }
    app.post<{ Params: { id: string } }>('/alerts/:id/evidence', { config: { roles: ['supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const why = takeReason(request);
      if (why) return badReason(request, reply, why);
      return alertPack(request, reply, formatOf((request.body as Form).format));
    });

    /** A period in UK local time from the form (datetime-local), or the errors to show. */
    const period = (q: Form): { from: Date; to: Date; errors: Array<{ text: string; href: string }> } => {
      const parse = (v: unknown) => (typeof v === 'string' && v !== '' ? DateTime.fromISO(v, { zone: 'Europe/London' }) : null);
      const f = parse(q.from);
      const t = parse(q.to);
      const errors: Array<{ text: string; href: string }> = [];
      if (!f?.isValid) errors.push({ text: 'Enter the start of the period as a date and time', href: '#evidence-from' });
      if (!t?.isValid) errors.push({ text: 'Enter the end of the period as a date and time', href: '#evidence-to' });
      const from = f?.isValid ? f.toJSDate() : new Date(NaN);
      const to = t?.isValid ? t.toJSDate() : new Date(NaN);
      if (errors.length === 0 && to <= from) errors.push({ text: 'The end of the period must be after its start', href: '#evidence-to' });
      else if (errors.length === 0 && to.getTime() - from.getTime() > PERIOD_MAX_MS) errors.push({ text: 'The period can be at most 7 days', href: '#evidence-to' });
      return { from, to, errors };
    };
    const periodPack = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, form: Form) => {
      const p = period(form);
      const format = formatOf(form.format);
      if (p.errors.length) {
        return reply.code(400).view('subject/evidence-page.njk', pageOf(request, { title: 'Evidence pack for a period', nav: 'caseload', subjectId: request.params.id, errors: p.errors, evidence: { from: form.from ?? '', to: form.to ?? '', format } }));
      }
      const src = await periodPackSource(pool, userOf(request), request.params.id, p.from, p.to);
      if (!src) return notFound(request, reply, 'person');
      return sendPack(deps, request, reply, src, {
        title: 'Evidence pack: locations in a period',
        base: `subject-${src.subjectId}-${p.from.toISOString().replace(/[:.]/g, '')}-${p.to.toISOString().replace(/[:.]/g, '')}`,
        late: null,
        summary: [
          ['Period (device time)', `${displayTime(p.from)} to ${displayTime(p.to)}`],
          ['Fixes', `${src.data.fixes.length}${src.truncated ? ' (truncated: see notes)' : ''}, from every GPS device fitted to the person in the period, each with the time it was received`],
        ],
        detail: { from: p.from.toISOString(), to: p.to.toISOString() },
      }, format);
    };
    app.get<{ Params: { id: string } }>('/subjects/:id/evidence', { config: { roles: ['offender_manager'], session: true }, schema: { hide: true } }, (request, reply) => periodPack(request, reply, request.query as Form));
    app.post<{ Params: { id: string } }>('/subjects/:id/evidence', { config: { roles: ['supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const why = takeReason(request);
      if (why) return badReason(request, reply, why);
      return periodPack(request, reply, request.body as Form);
    });

    /** A crime match: the crime and its R circle, the deciding fixes (placed and possible only), the run's parameters. */
    const matchPack = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, format: Format) => {
      const src = await matchPackSource(pool, request.params.id);
      if (!src) return reply.code(404).view('error.njk', pageOf(request, { title: 'Page not found', message: 'There is no crime match with this reference.' }));
      return sendPack(deps, request, reply, src, {
        title: `Evidence pack: crime match (${src.category})`,
        base: `crime-match-${request.params.id}`,
        late: null,
        summary: [
          ['Crime', `${src.crimeRef} (${src.crime.crime_type}), ${src.crime.force}`],
          ['Window (UTC)', `${src.crime.from_at.toISOString()} to ${src.crime.to_at.toISOString()} (${displayTime(src.crime.from_at)} to ${displayTime(src.crime.to_at)})`],
          ['Location', `${src.crime.lat.toFixed(6)}, ${src.crime.lon.toFixed(6)} (${src.crime.datum}${src.crime.easting !== null ? `: E ${src.crime.easting}, N ${src.crime.northing}` : ''})`],
          ['Category', src.category],
          ['Review', src.review],
        ],
        detail: { match_id: request.params.id, crime_id: src.crimeId, crime_ref: src.crimeRef },
      }, format);
    };
    for (const format of FORMATS) {
      app.get<{ Params: { id: string } }>(`/crime-matches/:id/evidence.${format}`, { config: { roles: ['crime_analyst', 'supervisor'], session: true }, schema: { hide: true } }, (request, reply) => matchPack(request, reply, format));
    }
  };
}

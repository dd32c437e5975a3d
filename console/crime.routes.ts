import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { userOf } from '../platform/http/auth.js';
import { parseReason } from '../platform/http/reason.js';
import { audit } from '../registry/audit.repo.js';
import { CRIME_BATCH_LIMIT, uploadBatch } from '../crime/crime.routes.js';
import { checkCrimeSubject, reviewCrimeMatch } from '../crime/crimes.routes.js';
import { crimeMatches, getBatch, getCrime } from '../crime/crime.repo.js';
import type { RowError } from '../crime/batch.js';
import type { ConsoleDeps } from './console.plugin.js';
import { batchCrimeRows, listBatches } from './crime.repo.js';
import { pageOf } from './evidence.routes.js';

/**
 * The crime matching pages (issue 13 §5): batches (upload, row errors, progress), a crime with
 * its map, its placed and possible subjects and their review, the one-subject check. Every
 * action goes through the API's functions (uploadBatch, reviewCrimeMatch, checkCrimeSubject)
 * with the same roles and audit; a crime analyst sees names only of placed and possible subjects.
 */

type Form = Record<string, unknown>;
const READERS = ['crime_analyst', 'supervisor'] as const;
const ANALYST = ['crime_analyst'] as const;
const ERRORS_SHOWN = 100;
const digits = (s: string) => /^\d{1,18}$/.test(s);

export function crimePageRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  const crimeDeps = deps.crime ?? { pool, queue: null, logger: null as never, metrics: null as never };
  return async (app: FastifyInstance): Promise<void> => {
    // the upload form posts multipart (a file); fields and the file land in the body as values
    await app.register(multipart, { attachFieldsToBody: 'keyValues', limits: { fileSize: CRIME_BATCH_LIMIT, files: 1, fields: 10 } });
    const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) =>
      reply.code(404).view('error.njk', pageOf(request, { title: 'Page not found', message: `There is no ${what} with this reference.` }));

    const batchesPage = async (request: FastifyRequest, reply: FastifyReply, status: number, extra: Record<string, unknown> = {}) => {
      const batches = await listBatches(pool, 100);
      await audit(pool, request, { action: 'crime.batch.list', detail: { via: 'console', count: batches.length } });
      return reply.code(status).view('crime/batches.njk', pageOf(request, { title: 'Crime batches', nav: 'crime', batches, ...extra }));
    };
    app.get('/crime', { config: { roles: READERS, session: true }, schema: { hide: true } }, (request, reply) => batchesPage(request, reply, 200));

    app.post('/crime/batches', { config: { roles: ANALYST, session: true }, schema: { hide: true } }, async (request, reply) => {
      const body = (request.body ?? {}) as Form;
      const file = Buffer.isBuffer(body.file) && body.file.length > 0 ? body.file : null;
      const text = typeof body.csv === 'string' && body.csv.trim() !== '' ? Buffer.from(body.csv, 'utf8') : null;
      if (!file && !text) {
        return batchesPage(request, reply, 400, { errors: [{ text: 'Choose a CSV file or paste the rows of a batch', href: '#batch-file' }], csvText: '' });
      }
      const out = await uploadBatch(crimeDeps, request, file ?? text);
      if (out.ok) return reply.code(303).header('location', `/console/crime/batches/${out.batch.id}`).send();
      const rowErrors = (out.errors ?? []).slice(0, ERRORS_SHOWN).map((e: RowError) => ({ text: `Row ${e.row}: ${e.reason}`, href: file ? '#batch-file' : '#batch-csv' }));
      const more = (out.errors?.length ?? 0) - rowErrors.length;
      const errors = [{ text: out.status === 422 ? 'No row of the batch is valid; nothing was stored' : out.detail.charAt(0).toUpperCase() + out.detail.slice(1), href: file ? '#batch-file' : '#batch-csv' }, ...rowErrors];
      if (more > 0) errors.push({ text: `and ${more} more rows`, href: '#batch-file' });
      return batchesPage(request, reply, out.status, { errors, csvText: file ? '' : String(body.csv ?? '') });
    });

    const progressOf = (b: NonNullable<Awaited<ReturnType<typeof getBatch>>>) => {
      const run = b.runs[b.runs.length - 1] ?? null;
      return run && { id: String(run.id), status: run.status, crimes_done: run.crimes_done, crimes_total: run.crimes_total, params_version: run.params_version, finished: run.status === 'done' || run.status === 'failed' };
    };
    app.get<{ Params: { id: string } }>('/crime/batches/:id', { config: { roles: READERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const b = digits(request.params.id) ? await getBatch(pool, request.params.id) : null;
      if (!b) return notFound(request, reply, 'crime batch');
      await audit(pool, request, { action: 'crime.batch.read', detail: { batch_id: b.id, police_batch_id: b.police_batch_id, via: 'console' } });
      const done = [...b.runs].reverse().find((r) => r.status === 'done') ?? null;
      const crimes = await batchCrimeRows(pool, String(b.id), done ? String(done.id) : null);
      const rowErrors = b.row_errors.slice(0, ERRORS_SHOWN).map((e) => ({ text: `Row ${e.row}: ${e.reason}`, href: '#row-errors' }));
      return reply.view('crime/batch.njk', pageOf(request, { title: `Crime batch ${b.police_batch_id}`, nav: 'crime', batch: b, progress: progressOf(b), runs: b.runs, crimes, rowErrors, doneRun: done }));
    });
    app.get<{ Params: { id: string } }>('/crime/batches/:id/progress', { config: { roles: READERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const b = digits(request.params.id) ? await getBatch(pool, request.params.id) : null;
      if (!b) return reply.code(404).send({ error: 'not found' });
      return { batch_id: String(b.id), run: progressOf(b) };
    });

    /** The crime page: the crime, its placed and possible subjects (latest finished run), their review; audited as GET /v1/crimes/{id}. */
    const showCrime = async (request: FastifyRequest, reply: FastifyReply, crimeId: string, status = 200, extra: Record<string, unknown> = {}) => {
      const crime = digits(crimeId) ? await getCrime(pool, crimeId) : null;
      if (!crime) return notFound(request, reply, 'crime');
      const { run, matches } = await crimeMatches(pool, String(crime.id), null);
      const detail = { crime_id: String(crime.id), crime_ref: crime.crime_ref, run_id: run?.id ?? null, via: 'console' };
      if (matches.length === 0) await audit(pool, request, { action: 'crime.read', detail });
      for (const m of matches) await audit(pool, request, { action: 'crime.read', subjectId: m.subject_id, detail: { ...detail, category: m.category } });
      const radius = run?.params.radius_m ?? 100;
      const mapData = {
        crime: { ref: crime.crime_ref, lat: crime.lat, lon: crime.lon, radius_m: radius },
        subjects: matches.map((m) => ({ subject_id: m.subject_id, category: m.category, fixes: (m.deciding as Array<{ ts: string; lat: number; lon: number; accuracy_m: number; reason: string }>).map((f) => ({ ts: f.ts, lat: f.lat, lon: f.lon, accuracy_m: f.accuracy_m, class: f.reason })) })),
      };
      return reply.code(status).view('crime/crime.njk', pageOf(request, { title: `Crime ${crime.crime_ref}`, nav: 'crime', crime, run, radius, matches, mapData, ...extra }));
    };
    app.get<{ Params: { id: string } }>('/crime/crimes/:id', { config: { roles: READERS, session: true }, schema: { hide: true } }, (request, reply) => showCrime(request, reply, request.params.id));

    /** Confirm or reject with a note: the same function as POST /v1/crime-matches/{id}/review. */
    app.post<{ Params: { id: string } }>('/crime/matches/:id/review', { config: { roles: ANALYST, session: true }, schema: { hide: true } }, async (request, reply) => {
      const body = (request.body ?? {}) as Form;
      const crimeId = typeof body.crime_id === 'string' && digits(body.crime_id) ? body.crime_id : null;
      const decision = body.decision === 'confirmed' || body.decision === 'rejected' ? body.decision : null;
      const note = typeof body.note === 'string' ? body.note.trim().slice(0, 2000) : '';
      const back = (errors: Array<{ text: string; href: string }>, status: number) =>
        crimeId ? showCrime(request, reply, crimeId, status, { errors, reviewing: request.params.id }) : reply.code(status).view('error.njk', pageOf(request, { title: 'The review was not recorded', message: errors.map((e) => e.text).join(' ') }));
      const field = `#note-${request.params.id}`;
      if (!digits(request.params.id)) return notFound(request, reply, 'crime match');
      if (!decision) return back([{ text: 'Choose confirm or reject', href: field }], 400);
      if (note === '') return back([{ text: 'Enter a note: why the match is confirmed or rejected', href: field }], 400);
      const r = await reviewCrimeMatch(crimeDeps, request, request.params.id, decision, note);
      if (!r.ok) return r.status === 404 ? notFound(request, reply, 'crime match') : back([{ text: r.detail, href: field }], 409);
      return reply.code(303).header('location', `/console/crime/crimes/${r.match.crime_id}#match-${r.match.id}`).send();
    });

    /** One subject's check for this crime (a defence or a rule-out): reason required; the same function as GET /v1/crimes/{id}/subjects/{subject_id}. */
    app.post<{ Params: { id: string } }>('/crime/crimes/:id/check', { config: { roles: READERS, session: true }, schema: { hide: true } }, async (request, reply) => {
      const body = (request.body ?? {}) as Form;
      const subjectId = typeof body.subject_id === 'string' ? body.subject_id.trim() : '';
      const errors: Array<{ text: string; href: string }> = [];
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(subjectId)) errors.push({ text: 'Enter the person’s ID (letters, digits, _ and -)', href: '#check-subject' });
      const parsed = parseReason(String(body.reason ?? ''));
      if ('problem' in parsed) errors.push({ text: `The reason ${parsed.problem}`, href: '#check-reason' });
      if (errors.length) return showCrime(request, reply, request.params.id, 400, { errors, check: { subject_id: subjectId, reason: String(body.reason ?? '') } });
      const reason = (parsed as { reason: string }).reason;
      request.reason = reason;
      if (!digits(request.params.id)) return notFound(request, reply, 'crime');
      const out = await checkCrimeSubject(pool, request, request.params.id, subjectId, reason);
      if (!out.ok) {
        if (out.detail.startsWith('crime')) return notFound(request, reply, 'crime');
        return showCrime(request, reply, request.params.id, 404, { errors: [{ text: `There is no person with the ID ${subjectId}`, href: '#check-subject' }], check: { subject_id: subjectId, reason } });
      }
      return reply.view('crime/check.njk', pageOf(request, { title: `Check of ${subjectId} for crime ${out.check.crime_ref}`, nav: 'crime', check: out.check, crimeId: request.params.id, checkedBy: userOf(request).id }));
    });
  };
}

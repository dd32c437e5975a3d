import type { FastifyInstance, FastifyRequest } from 'fastify';
import { userOf } from '../platform/http/auth.js';
import { problem } from '../platform/http/problem.js';
import { requireReason } from '../platform/http/reason.js';
import { audit } from '../registry/audit.repo.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import type { ConsoleDeps } from './console.plugin.js';
import { latestFix, liveZones, trackColumns } from './subject.repo.js';
import { localInput, parsePeriod, scheduleInWords, type PeriodError } from './subject-map.js';

/**
 * The subject page's map (issue 11, page 4): the latest position, the live zones, the track of
 * a chosen period and its replay. The page itself is rendered by pages.routes.ts (showSubject),
 * which spreads `subjectMapView` into its context; the replay script fetches the track from
 * `GET /console/subjects/{id}/track`, session-authenticated, audited like `GET /v1/…/track`.
 */

/** At most this many fixes in one track answer (7 days at one fix every 12 s); more: `truncated`. */
export const TRACK_LIMIT = 50_000;

type Subject = { id: string; timezone: string };

export interface SubjectMapView {
  mapErrors: PeriodError[];
  /** the error summary's list (links to the fields) and each field's first error */
  mapErrorList: Array<{ text: string; href: string }>;
  mapErrorText: { from?: string; to?: string };
  period: { from: string; to: string; fromIso: string | null; toIso: string | null };
  latest: { ts: Date; received_at: Date; lat: number; lon: number; accuracy_m: number } | null;
  zones: Array<{ id: string; name: string; kind: string; scheduleText: string }>;
  mapData: Record<string, unknown>;
}

/** The map part of the subject page: reads (and audits) the latest fix and the live zones; checks the chosen period. */
export async function subjectMapView(deps: ConsoleDeps, request: FastifyRequest, subject: Subject): Promise<SubjectMapView> {
  const now = new Date();
  // the period form: a query (GET, managers) or, for a supervisor, posted with the reason to …/open
  const raw = { ...((request.body as Record<string, unknown> | undefined) ?? {}), ...(request.query as Record<string, unknown>) };
  const chosen = parsePeriod({ from: raw.from, to: raw.to }, subject.timezone, now, true);
  const [latest, zones] = await Promise.all([latestFix(deps.pool, subject.id), liveZones(deps.pool, subject.id, now)]);
  await audit(deps.pool, request, { action: 'track.read', subjectId: subject.id, detail: { via: 'console.subject', latest_fix_at: latest?.ts.toISOString() ?? null, fixes: latest ? 1 : 0 } });
  await audit(deps.pool, request, { action: 'zone.list', subjectId: subject.id, detail: { via: 'console.subject', zone_ids: zones.map((z) => z.id) } });
  const ok = 'errors' in chosen ? null : chosen;
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 40) : '');
  const period = ok
    ? { from: localInput(ok.from, subject.timezone), to: localInput(ok.to, subject.timezone), fromIso: ok.from.toISOString(), toIso: ok.to.toISOString() }
    : { from: text(raw.from), to: text(raw.to), fromIso: null, toIso: null };
  const id = encodeURIComponent(subject.id);
  const errors = 'errors' in chosen ? chosen.errors : [];
  const mapErrorText: { from?: string; to?: string } = {};
  for (const e of errors) mapErrorText[e.field] ??= e.text;
  return {
    mapErrors: errors,
    mapErrorList: errors.map((e) => ({ text: e.text, href: `#track-${e.field}` })),
    mapErrorText,
    period,
    latest,
    zones: zones.map((z) => ({ id: z.id, name: z.name, kind: z.kind, scheduleText: scheduleInWords(z, subject.timezone) })),
    mapData: {
      latest: latest ? { ts: latest.ts.toISOString(), lon: latest.lon, lat: latest.lat, accuracy_m: latest.accuracy_m } : null,
      zones: zones.map((z) => ({ id: z.id, name: z.name, kind: z.kind, geometry: z.geometry, radius_m: z.radius_m })),
      track: ok ? `/console/subjects/${id}/track?from=${encodeURIComponent(ok.from.toISOString())}&to=${encodeURIComponent(ok.to.toISOString())}` : null,
      timezone: subject.timezone,
      // a supervisor's stated reason (from the reason form) goes with the track request, into its audit row
      reason: userOf(request).role === 'supervisor' ? request.reason : null,
    },
  };
}

export function subjectRoutes(deps: ConsoleDeps) {
  const { pool } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    /**
     * The track for the replay: columns, not an object per fix. Same caseload check as the page
     * (404 outside it); a supervisor sends the reason given on the page (X-Tagwatch-Reason).
     */
    app.get<{ Params: { id: string } }>('/subjects/:id/track', { config: { roles: ['offender_manager', 'supervisor'], session: true }, schema: { hide: true } }, async (request, reply) => {
      const user = userOf(request);
      if (user.role === 'supervisor' && requireReason(request, reply) === null) return reply;
      const subject = await getSubjectFor(pool, user, request.params.id);
      if (!subject) return problem(reply, 404, 'Not Found', `There is no person ${request.params.id} in your caseload`);
      const q = request.query as Record<string, unknown>;
      const period = parsePeriod({ from: q.from, to: q.to }, subject.timezone, new Date(), false);
      if ('errors' in period) return problem(reply, 400, 'Bad Request', period.errors.map((e) => `${e.field}: ${e.text}`).join('; '), { errors: period.errors });
      const track = await trackColumns(pool, subject.id, period.from, period.to, TRACK_LIMIT);
      await audit(pool, request, { action: 'track.read', subjectId: subject.id, detail: { via: 'console.replay', from: period.from.toISOString(), to: period.to.toISOString(), fixes: track.ts.length } });
      reply.header('cache-control', 'no-store');
      return { from: period.from.toISOString(), to: period.to.toISOString(), count: track.ts.length, ...track };
    });
  };
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DateTime } from 'luxon';
import type { Pool } from '../platform/db.js';
import { userOf } from '../platform/http/auth.js';
import { problem, problemResponses } from '../platform/http/problem.js';
import { supervisorReadsOneSubject } from '../platform/http/reason.js';
import { DateTimeIn, RefId } from '../platform/http/schemas.js';
import { audit, auditSubjects } from '../registry/audit.repo.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { DEFAULT_INTEGRITY, HOUR_MS, hourTable, MONITORED_STREAMS, type GapStatus, type IntegrityParams, type StreamGap } from './integrity.js';
import { fittingsBetween, fleetGaps, hourCounts, subjectGap } from './integrity.repo.js';

/** at most 31 days of hours in one answer */
export const MAX_MONITORING_HOURS = 31 * 24;

const StreamHour = Type.Union([Type.Object({ fitted_minutes: Type.Number(), expected: Type.Number(), received: Type.Integer() }), Type.Null()]);
const Judged = Type.Union([Type.Object({ hour: Type.String(), fitted_minutes: Type.Number(), expected: Type.Number(), received: Type.Integer() }), Type.Null()]);
const Reasons = Type.Array(Type.String({ description: 'below_expected_last_hour | alcohol_coverage_below_day_rule' }));
const GapBody = Type.Object({
  gap: Type.Boolean(),
  gps: Type.Object({ gap: Type.Boolean(), reasons: Reasons, judged: Judged }),
  alcohol: Type.Object({ gap: Type.Boolean(), reasons: Reasons, judged: Judged, fitted_hours_24h: Type.Integer(), covered_hours_24h: Type.Integer() }),
});
const Cadence = Type.Object({ gps_fix_minutes: Type.Number(), alcohol_reading_minutes: Type.Number(), gap_ratio: Type.Number(), covered_hours_per_day: Type.Number() });

const streamGapOut = (s: StreamGap) => ({ gap: s.gap, reasons: s.reasons, judged: s.judged && { ...s.judged, hour: new Date(s.judged.hour).toISOString() } });
function gapOut(g: GapStatus) {
  return { gap: g.gap, gps: streamGapOut(g.gps), alcohol: { ...streamGapOut(g.alcohol), fitted_hours_24h: g.alcohol.fitted_hours_24h, covered_hours_24h: g.alcohol.covered_hours_24h } };
}
const cadenceOut = (p: IntegrityParams) => ({ gps_fix_minutes: p.gpsFixMinutes, alcohol_reading_minutes: p.alcoholReadingMinutes, gap_ratio: p.gapRatio, covered_hours_per_day: p.coveredHoursPerDay });

/**
 * Monitoring integrity (issue 14 §4): expected vs received readings per hour for one subject
 * (manager of the subject; supervisor with a reason), and the caseload's subjects in a monitoring
 * gap now. The delivery to the manager is this API and /metrics: no alert type is added (the
 * contract's types are fixed, §5). Every answer is audited.
 */
export function integrityRoutes(pool: Pool, params: IntegrityParams = DEFAULT_INTEGRITY, clock: () => number = Date.now): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/v1/subjects/:id/monitoring',
      {
        config: { roles: ['offender_manager', 'supervisor'], reasonRequired: supervisorReadsOneSubject },
        schema: {
          operationId: 'getSubjectMonitoring',
          tags: ['monitoring'],
          summary: 'Expected and received GPS fixes and alcohol readings per UTC hour of [from, to) (at most 31 days), and whether the subject is in a monitoring gap now',
          params: Type.Object({ id: RefId }),
          querystring: Type.Object({ from: DateTimeIn, to: DateTimeIn }, { additionalProperties: false }),
          response: {
            200: Type.Object({
              subject_id: Type.String(),
              from: Type.String(),
              to: Type.String(),
              now: Type.String(),
              cadence: Cadence,
              hours: Type.Array(Type.Object({ hour: Type.String(), local: Type.String(), gps: StreamHour, alcohol: StreamHour })),
              monitoring_gap: GapBody,
            }),
            ...problemResponses,
          },
        },
      },
      async (request, reply) => {
        const from = Date.parse(request.query.from);
        const to = Date.parse(request.query.to);
        if (!(from < to)) return problem(reply, 400, 'Bad Request', '`from` must be before `to`');
        if (to - from > MAX_MONITORING_HOURS * HOUR_MS) return problem(reply, 400, 'Bad Request', `a period covers at most ${MAX_MONITORING_HOURS / 24} days`);
        const subject = await getSubjectFor(pool, userOf(request), request.params.id);
        if (!subject) return problem(reply, 404, 'Not Found', `subject ${request.params.id} not found`);
        const now = clock();
        const end = new Date(Math.min(to, now));
        const fittings = await fittingsBetween(pool, [subject.id], new Date(from), end);
        const counts = from < end.getTime() ? await hourCounts(pool, [subject.id], MONITORED_STREAMS, new Date(from), end) : new Map();
        const rows = hourTable(fittings, counts.get(subject.id) ?? [], from, to, now, params);
        const gap = await subjectGap(pool, subject.id, now, params);
        await audit(pool, request, { action: 'monitoring.read', subjectId: subject.id, detail: { from: request.query.from, to: request.query.to, hours: rows.length, gap: gap.gap } });
        return {
          subject_id: subject.id,
          from: new Date(from).toISOString(),
          to: new Date(to).toISOString(),
          now: new Date(now).toISOString(),
          cadence: cadenceOut(params),
          hours: rows.map((r) => ({ hour: new Date(r.hour).toISOString(), local: DateTime.fromMillis(r.hour, { zone: subject.timezone }).toISO()!, gps: r.gps, alcohol: r.alcohol })),
          monitoring_gap: gapOut(gap),
        };
      },
    );

    app.get(
      '/v1/monitoring/gaps',
      {
        config: { roles: ['offender_manager', 'supervisor'] },
        schema: {
          operationId: 'listMonitoringGaps',
          tags: ['monitoring'],
          summary: 'Subjects with a device fitted now who are in a monitoring gap (managers: their caseload; supervisors: all)',
          response: {
            200: Type.Object({
              now: Type.String(),
              cadence: Cadence,
              fitted_subjects: Type.Integer(),
              subjects: Type.Array(Type.Object({ subject_id: Type.String(), monitoring_gap: GapBody })),
            }),
            401: problemResponses[401],
            403: problemResponses[403],
          },
        },
      },
      async (request) => {
        const now = clock();
        const all = await fleetGaps(pool, userOf(request), now, params);
        const inGap = [...all].filter(([, g]) => g.gap);
        // one audit row per subject shown, with the streams in a gap
        await auditSubjects(pool, request, 'monitoring.gaps', new Map(inGap.map(([id, g]) => [id, { gps: g.gps.gap, alcohol: g.alcohol.gap }])), { at: new Date(now).toISOString() });
        return { now: new Date(now).toISOString(), cadence: cadenceOut(params), fitted_subjects: all.size, subjects: inGap.map(([id, g]) => ({ subject_id: id, monitoring_gap: gapOut(g) })) };
      },
    );
  };
}

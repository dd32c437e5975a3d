import type { Queryable } from '../platform/db.js';
import type { User } from '../platform/http/auth.js';
import { getSubjectFor } from '../registry/subjects.repo.js';
import { getAlertFor } from '../alerts/lifecycle.repo.js';
import { getCrime, getMatch, getRun, type CrimeRecord } from '../crime/crime.repo.js';
import { evidenceWithReceipt, zoneForMap } from './console.repo.js';
import type { PackData, PackFix, PackZone } from './evidence.files.js';

/**
 * What an evidence pack holds, read through the same caseload filter as the pages and the API
 * (another manager's alert or person is null: a 404). Versions: what the service stores.
 */

export interface PackSource {
  data: PackData;
  subjectId: string;
  versions: Array<[string, string]>;
  notes: string[];
}

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

interface ZoneRow extends PackZone {
  grace_s: number;
  schedule: unknown;
  active_from: Date | null;
  active_to: Date | null;
  created_at: Date;
  created_by: string;
  deleted_at: Date | null;
}

async function zoneRows(db: Queryable, subjectId: string, ids: string[] | null, from?: Date, to?: Date): Promise<ZoneRow[]> {
  const r = await db.query<ZoneRow>(
    `SELECT id, name, kind, geometry, radius_m, grace_s, schedule, active_from, active_to, created_at, created_by, deleted_at FROM zones
      WHERE subject_id = $1 AND ($2::uuid[] IS NULL OR id = ANY($2))
        AND ($3::timestamptz IS NULL OR deleted_at IS NULL OR deleted_at >= $3) AND ($4::timestamptz IS NULL OR created_at <= $4)
      ORDER BY created_at, id`,
    [subjectId, ids, from ?? null, to ?? null],
  );
  return r.rows;
}

const zoneOf = (z: ZoneRow): PackZone => ({ id: z.id, name: z.name, kind: z.kind, geometry: z.geometry, radius_m: z.radius_m });

function zoneVersions(zones: ZoneRow[]): Array<[string, string]> {
  return zones.map((z) => [
    `Zone ${z.name || z.id}`,
    `${z.kind}, id ${z.id}, created ${z.created_at.toISOString()} by ${z.created_by}${z.deleted_at ? `, deleted ${z.deleted_at.toISOString()}` : ''}; grace ${z.grace_s} s; ` +
      `schedule ${z.schedule ? JSON.stringify(z.schedule) : 'always'}${z.active_from || z.active_to ? `; active ${iso(z.active_from) ?? '…'} to ${iso(z.active_to) ?? '…'}` : ''}`,
  ]);
}

/** Parameter versions an alert's evidence carries (e.g. alcohol's `params_version`), as they are stored. */
function evidenceVersions(evidence: unknown): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const e of Array.isArray(evidence) ? evidence : []) {
    if (e && typeof e === 'object') for (const [k, v] of Object.entries(e)) if (/version/i.test(k) && (typeof v === 'string' || typeof v === 'number')) out.push([k, String(v)]);
  }
  return [...new Map(out.map((x) => [x.join('='), x])).values()];
}

export async function alertPackSource(db: Queryable, user: User, alertId: string): Promise<(PackSource & { alert: Record<string, unknown> & { history: unknown[] } }) | null> {
  const alert = (await getAlertFor(db, user, alertId)) as (Record<string, unknown> & { history: unknown[] }) | null;
  if (!alert) return null;
  const subjectId = alert.subject_id as string;
  const subject = (await db.query<{ id: string; display_name: string }>(`SELECT id, display_name FROM subjects WHERE id = $1`, [subjectId])).rows[0]!;
  const rows = await evidenceWithReceipt(db, alert.device_id as string | null, alert.evidence);
  const items = (Array.isArray(alert.evidence) ? alert.evidence : []) as Array<Record<string, unknown>>;
  const fixItems = items.filter((e) => typeof e?.ts === 'string');
  const fixes: PackFix[] = rows.map((f, i) => ({
    n: i + 1,
    ts: iso(f.ts)!,
    received_at: iso(f.received_at),
    lat: f.lat,
    lon: f.lon,
    accuracy_m: f.accuracy_m,
    class: f.class ?? ((fixItems[i]?.reason as string | undefined) ?? null),
    device_id: (fixItems[i]?.device_id as string | undefined) ?? (alert.device_id as string | null) ?? null,
    distance_m: typeof fixItems[i]?.distance_m === 'number' ? (fixItems[i]!.distance_m as number) : null,
  }));
  const zone = await zoneForMap(db, subjectId, (alert.zone_id as string | null) ?? null);
  const zones = zone ? await zoneRows(db, subjectId, [zone.id]) : [];
  const versions: Array<[string, string]> = [
    ['Rule version', 'Not stored with the alert (the service records no rule or code version per alert); the rules are those of the contract version the service implements.'],
    ...zoneVersions(zones),
    ...evidenceVersions(alert.evidence),
  ];
  // a crime_proximity alert: the crime and its radius R are drawn, the run's parameters printed
  let target: PackData['target'] = null;
  const crime = (await db.query<{ crime_match_id: string | null }>(`SELECT crime_match_id::text FROM alerts WHERE id = $1`, [alert.id])).rows[0]?.crime_match_id ?? null;
  if (crime) {
    const m = await getMatch(db, crime);
    const run = m ? await getRun(db, m.run_id) : null;
    if (run) versions.push(['Crime matching parameters', `version ${run.params_version}: ${JSON.stringify(run.params)}; run ${run.id}, readings received up to ${iso(run.readings_received_max) ?? 'none'}`]);
    const c = items.find((e) => e?.kind === 'crime') as { crime_ref?: string; location?: { lat: number; lon: number } } | undefined;
    if (c?.location) target = { label: c.crime_ref ?? 'crime', lat: c.location.lat, lon: c.location.lon, radius_m: run?.params.radius_m ?? 100 };
  }
  const notes = zones.length ? ['Zones are never edited in place (a change deletes the zone and creates another), so the zone printed is the rule the alert was raised on.'] : [];
  return { alert, subjectId, data: { reference: `alert ${alert.id}`, subject, zones: zones.map(zoneOf), target, fixes }, versions, notes };
}

/** ms: the longest period a subject pack covers */
export const PERIOD_MAX_MS = 7 * 24 * 3_600_000;
/** fixes: the most a period pack carries (the CSV and GeoJSON too) */
export const PERIOD_FIXES_MAX = 20_000;

/** A subject's GPS fixes in [from, to] (device time) from every GPS-capable device fitted then, with their receipt times; zones that existed in the period. */
export async function periodPackSource(db: Queryable, user: User, subjectId: string, from: Date, to: Date): Promise<(PackSource & { truncated: boolean }) | null> {
  const subject = await getSubjectFor(db, user, subjectId);
  if (!subject) return null;
  const r = await db.query<{ device_id: string; ts: Date; received_at: Date; lat: number; lon: number; accuracy_m: number }>(
    `SELECT r.device_id, r.ts, r.received_at, r.lat, r.lon, r.accuracy_m
       FROM assignments a JOIN devices d ON d.id = a.device_id
       JOIN readings r ON r.device_id = a.device_id AND r.stream = 'gps' AND r.ts >= greatest(a.start_at, $2) AND r.ts < least(coalesce(a.end_at, 'infinity'), $3::timestamptz + interval '1 millisecond')
      WHERE a.subject_id = $1 AND d.kind IN ('gps', 'combined') AND a.start_at <= $3 AND (a.end_at IS NULL OR a.end_at > $2)
        AND r.lat IS NOT NULL AND r.lon IS NOT NULL
      ORDER BY r.ts, r.device_id LIMIT $4`,
    [subject.id, from, to, PERIOD_FIXES_MAX + 1],
  );
  const truncated = r.rows.length > PERIOD_FIXES_MAX;
  const fixes: PackFix[] = r.rows.slice(0, PERIOD_FIXES_MAX).map((x, i) => ({ n: i + 1, ts: x.ts.toISOString(), received_at: x.received_at.toISOString(), lat: x.lat, lon: x.lon, accuracy_m: x.accuracy_m, class: null, device_id: x.device_id, distance_m: null }));
  const zones = await zoneRows(db, subject.id, null, from, to);
  const notes = ['Fixes of a period are not classed against zones here (the alerts of the period carry their own classes).'];
  if (truncated) notes.push(`The period holds more than ${PERIOD_FIXES_MAX} fixes: only the first ${PERIOD_FIXES_MAX} are in this pack; choose a shorter period.`);
  return {
    subjectId: subject.id,
    truncated,
    data: { reference: `subject ${subject.id}, ${from.toISOString()} to ${to.toISOString()}`, subject: { id: subject.id, display_name: subject.display_name }, zones: zones.map(zoneOf), target: null, fixes },
    versions: [['Rule version', 'Not applicable: a period pack shows stored readings, no rule decision.'], ...zoneVersions(zones)],
    notes,
  };
}

/** A crime match: the crime, its radius R (the run's parameters) and the deciding fixes (placed and possible only: nothing else is ever stored). */
export async function matchPackSource(db: Queryable, matchId: string): Promise<(PackSource & { crimeRef: string; crimeId: string; category: string; review: string; crime: CrimeRecord }) | null> {
  if (!/^\d{1,18}$/.test(matchId)) return null;
  const m = await getMatch(db, matchId);
  if (!m) return null;
  const crime = (await getCrime(db, m.crime_id))!;
  const run = (await getRun(db, m.run_id))!;
  const fixes: PackFix[] = (m.deciding as Array<{ ts: string; lat: number; lon: number; accuracy_m: number; device_id: string; distance_m: number; reason: string }>).map((f, i) => ({
    n: i + 1,
    ts: iso(f.ts)!,
    received_at: null,
    lat: f.lat,
    lon: f.lon,
    accuracy_m: f.accuracy_m,
    class: f.reason,
    device_id: f.device_id,
    distance_m: f.distance_m,
  }));
  return {
    subjectId: m.subject_id,
    crimeRef: crime.crime_ref,
    crimeId: String(crime.id),
    category: m.category,
    review: m.review,
    crime,
    data: { reference: `crime match ${m.id} (crime ${crime.crime_ref})`, subject: { id: m.subject_id, display_name: m.display_name }, zones: [], target: { label: crime.crime_ref, lat: crime.lat, lon: crime.lon, radius_m: run.params.radius_m }, fixes },
    versions: [
      ['Crime matching parameters', `version ${run.params_version}: R ${run.params.radius_m} m, V ${run.params.speed_mps} m/s, G ${run.params.max_gap_s} s`],
      ['Run', `${run.id} (${run.status}), finished ${iso(run.finished_at) ?? 'not yet'}; readings received up to ${iso(run.readings_received_max) ?? 'none'}`],
      ['Rules', 'contract 1.1 §8 (placed, possible, ruled_out, no_data), haversine on a sphere of 6,371,008.8 m'],
    ],
    notes: ['Receipt times of the deciding fixes are not stored with a match; the run records the latest receipt time of all readings it used.'],
  };
}

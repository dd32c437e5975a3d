import { DateTime } from 'luxon';
import { DAYS, type Day } from '../geofence/schedule.js';
import type { ZoneRow } from '../geofence/zones.repo.js';
import type { ZoneFeatureIn, ZoneProblem } from '../geofence/zones.service.js';

/**
 * The zone form of the console (no JavaScript needed): what was typed, kept as typed so a page
 * with errors shows it again; turned into the API's GeoJSON Feature here, and the API's
 * problems turned back into errors linked to the fields. Pure. Times typed in the form are
 * wall-clock in the person's time zone; positions are WGS84 degrees; radius in metres.
 */

export interface WindowForm { days: string[]; start: string; end: string }
export interface PeriodForm { from: string; to: string }
export interface ZoneForm {
  name: string;
  kind: string;
  shape: string;
  centre_lat: string;
  centre_lon: string;
  radius_m: string;
  /** one "lat, lon" vertex a line */
  vertices: string;
  windows: WindowForm[];
  active_from: string;
  active_to: string;
  exceptions: PeriodForm[];
  grace_s: string;
}
/** An error for the GOV.UK error summary: `id` is the field's element id. */
export interface FieldError { id: string; text: string }

/** Blank rows shown after the filled ones, so a person without JavaScript can add windows and exceptions. */
export const BLANK_ROWS = 2;
/** most rows read from a post (above the API's limits of 50 windows and 500 exceptions, which then say no) */
const MAX_ROWS = 1000;

const str = (v: unknown): string => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '').trim();
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);

/** The form as posted (url-encoded; windows `window_N_days|start|end`, exceptions `exception_N_from|to`). */
export function formOf(body: Record<string, unknown>): ZoneForm {
  const windows: WindowForm[] = [];
  const exceptions: PeriodForm[] = [];
  const rows = Math.min(MAX_ROWS, 1 + Math.max(-1, ...Object.keys(body).map((k) => Number(/^(?:window|exception)_(\d{1,4})_/.exec(k)?.[1] ?? -1))));
  for (let i = 0; i < rows; i++) {
    const w = { days: list(body[`window_${i}_days`]).filter((d) => (DAYS as readonly string[]).includes(d)), start: str(body[`window_${i}_start`]), end: str(body[`window_${i}_end`]) };
    if (w.days.length || w.start || w.end) windows.push(w);
    const x = { from: str(body[`exception_${i}_from`]), to: str(body[`exception_${i}_to`]) };
    if (x.from || x.to) exceptions.push(x);
  }
  return {
    name: str(body.name),
    kind: str(body.kind),
    shape: str(body.shape),
    centre_lat: str(body.centre_lat),
    centre_lon: str(body.centre_lon),
    radius_m: str(body.radius_m),
    vertices: typeof body.vertices === 'string' ? body.vertices.trim() : '',
    windows,
    active_from: str(body.active_from),
    active_to: str(body.active_to),
    exceptions,
    grace_s: str(body.grace_s),
  };
}

export function emptyForm(): ZoneForm {
  return { name: '', kind: '', shape: '', centre_lat: '', centre_lon: '', radius_m: '', vertices: '', windows: [], active_from: '', active_to: '', exceptions: [], grace_s: '60' };
}

const local = (iso: string | Date, tz: string) => (iso instanceof Date ? DateTime.fromJSDate(iso) : DateTime.fromISO(iso)).setZone(tz).toFormat('yyyy-MM-dd HH:mm');
const deg = (n: number | undefined) => (n === undefined ? '' : String(Math.round(n * 1e7) / 1e7));

/** Whether the form can show a zone's shape: a circle or a polygon without holes (not a MultiPolygon). */
export function formCanShow(z: Pick<ZoneRow, 'geometry'>): boolean {
  return z.geometry.type === 'Point' || (z.geometry.type === 'Polygon' && z.geometry.coordinates.length === 1);
}

/** A stored zone as the form shows it (callers check formCanShow first). */
export function formFromZone(z: ZoneRow, tz: string): ZoneForm {
  const g = z.geometry;
  const ring = g.type === 'Polygon' ? g.coordinates[0] : g.type === 'MultiPolygon' ? g.coordinates[0]?.[0] : undefined;
  const vertices = (ring ?? []).slice(0, -1).map((p) => `${deg(p[1])}, ${deg(p[0])}`).join('\n');
  return {
    name: z.name,
    kind: z.kind,
    shape: g.type === 'Point' ? 'circle' : 'polygon',
    centre_lat: g.type === 'Point' ? deg(g.coordinates[1]) : '',
    centre_lon: g.type === 'Point' ? deg(g.coordinates[0]) : '',
    radius_m: z.radius_m !== null ? String(z.radius_m) : '',
    vertices,
    windows: (z.schedule ?? []).map((w) => ({ days: [...w.days], start: w.start, end: w.end })),
    active_from: z.active_from ? local(z.active_from, tz) : '',
    active_to: z.active_to ? local(z.active_to, tz) : '',
    exceptions: z.exceptions.map((x) => ({ from: local(x.from, tz), to: local(x.to, tz) })),
    grace_s: String(z.grace_s),
  };
}

const NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)$/;

/** A typed date and time in `tz` ("2026-12-24 18:00", "2026-12-24T18:00", or RFC 3339 with its own offset) as RFC 3339 UTC, or null. */
export function parseLocal(s: string, tz: string): string | null {
  const t = s.trim().replace(/\s+/, 'T');
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?$/.test(t)) return null;
  const d = DateTime.fromISO(t, { zone: tz });
  return d.isValid ? d.toUTC().toISO({ suppressMilliseconds: true }) : null;
}

/**
 * The API's Feature for what was typed, or the errors that stop it being built (a field left
 * empty, text where a number goes). Ranges and geometry rules are not checked here: the API's
 * own checks (zones.service.ts) do that, and their problems come back through `errorsOf`.
 */
export function featureOf(f: ZoneForm, tz: string): { feature: ZoneFeatureIn | null; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (f.kind !== 'exclusion' && f.kind !== 'inclusion') errors.push({ id: 'kind', text: 'Select the kind of zone' });
  let geometry: ZoneFeatureIn['geometry'] | null = null;
  let radius: number | undefined;
  if (f.shape === 'circle') {
    const lat = NUMBER.test(f.centre_lat) ? Number(f.centre_lat) : null;
    const lon = NUMBER.test(f.centre_lon) ? Number(f.centre_lon) : null;
    if (lat === null) errors.push({ id: 'centre_lat', text: f.centre_lat ? 'Enter the latitude of the centre as a number of degrees, like 52.9536' : 'Enter the latitude of the centre' });
    if (lon === null) errors.push({ id: 'centre_lon', text: f.centre_lon ? 'Enter the longitude of the centre as a number of degrees, like -1.1505' : 'Enter the longitude of the centre' });
    if (!NUMBER.test(f.radius_m)) errors.push({ id: 'radius_m', text: f.radius_m ? 'Enter the radius as a number of metres, like 200' : 'Enter the radius in metres' });
    else radius = Number(f.radius_m);
    if (lat !== null && lon !== null) geometry = { type: 'Point', coordinates: [lon, lat] };
  } else if (f.shape === 'polygon') {
    const lines = f.vertices.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    const ring: number[][] = [];
    const bad = lines.findIndex((l) => {
      const parts = l.split(/[\s,;]+/).filter(Boolean);
      if (parts.length !== 2 || !parts.every((p) => NUMBER.test(p))) return true;
      ring.push([Number(parts[1]), Number(parts[0])]);
      return false;
    });
    if (lines.length === 0) errors.push({ id: 'vertices', text: 'Enter the corners of the polygon, one "latitude, longitude" a line' });
    else if (bad >= 0) errors.push({ id: 'vertices', text: `Line ${bad + 1} of the corners must be a latitude and a longitude separated by a comma, like 52.9536, -1.1505` });
    else {
      const first = ring[0]!;
      const last = ring[ring.length - 1]!;
      if (first[0] !== last[0] || first[1] !== last[1]) ring.push([...first]); // the ring is closed for the person
      geometry = { type: 'Polygon', coordinates: [ring] };
    }
  } else errors.push({ id: 'shape', text: 'Select the shape of the zone: a circle or a polygon' });

  const schedule = f.windows.map((w, i) => {
    if (w.days.length === 0) errors.push({ id: `window_${i}_days`, text: `Select the days of window ${i + 1}` });
    if (!w.start) errors.push({ id: `window_${i}_start`, text: `Enter the start time of window ${i + 1}, like 19:00` });
    if (!w.end) errors.push({ id: `window_${i}_end`, text: `Enter the end time of window ${i + 1}, like 07:00` });
    return { days: w.days as Day[], start: w.start, end: w.end };
  });
  const when = (s: string, id: string, what: string): string | undefined => {
    if (!s) return undefined;
    const v = parseLocal(s, tz);
    if (!v) errors.push({ id, text: `Enter ${what} as a date and time, like 2026-12-24 18:00` });
    return v ?? undefined;
  };
  const active_from = when(f.active_from, 'active_from', 'when the zone starts');
  const active_to = when(f.active_to, 'active_to', 'when the zone ends');
  const exceptions = f.exceptions.map((x, i) => {
    if (!x.from) errors.push({ id: `exception_${i}_from`, text: `Enter the start of exception ${i + 1}` });
    if (!x.to) errors.push({ id: `exception_${i}_to`, text: `Enter the end of exception ${i + 1}` });
    return { from: when(x.from, `exception_${i}_from`, `the start of exception ${i + 1}`) ?? '', to: when(x.to, `exception_${i}_to`, `the end of exception ${i + 1}`) ?? '' };
  });
  let grace: number | undefined;
  if (f.grace_s !== '') {
    if (!/^\d+$/.test(f.grace_s)) errors.push({ id: 'grace_s', text: 'Enter the grace period as a whole number of seconds, like 60' });
    else grace = Number(f.grace_s);
  }
  if (errors.length || !geometry) return { feature: null, errors };
  return {
    feature: {
      type: 'Feature',
      geometry,
      properties: {
        kind: f.kind as 'exclusion' | 'inclusion',
        ...(f.name ? { name: f.name } : {}),
        ...(radius !== undefined ? { radius_m: radius } : {}),
        ...(schedule.length ? { schedule } : {}),
        ...(active_from ? { active_from } : {}),
        ...(active_to ? { active_to } : {}),
        ...(exceptions.length ? { exceptions } : {}),
        ...(grace !== undefined ? { grace_s: grace } : {}),
      },
    },
    errors,
  };
}

/** The API's problems with a zone as errors on the form's fields (the API's words kept, with what they are about). */
export function errorsOf(problems: ZoneProblem[], shape: string): FieldError[] {
  return problems.map((p): FieldError => {
    const i = p.index ?? 0;
    switch (p.field) {
      case 'geometry':
        if (shape === 'circle') return { id: /latitude/.test(p.message) ? 'centre_lat' : 'centre_lon', text: `The centre is not valid: ${p.message}` };
        return { id: 'vertices', text: `The polygon is not valid: ${p.message} (positions are [longitude, latitude])` };
      case 'radius_m':
        return { id: 'radius_m', text: `The radius is not valid: ${p.message}` };
      case 'schedule': {
        const part = /\.start/.test(p.message) ? 'start' : /\.end/.test(p.message) ? 'end' : 'days';
        return { id: p.index === undefined ? 'window_0_days' : `window_${i}_${part}`, text: `Window ${i + 1} is not valid: ${p.message}` };
      }
      case 'active_from':
      case 'active_to':
        return { id: p.field, text: p.message === 'active_from must be before active_to' ? 'The zone must start before it ends (active from must be before active to)' : `${p.field}: ${p.message}` };
      case 'exceptions':
        return { id: `exception_${i}_to`, text: `Exception ${i + 1} must start before it ends (${p.message})` };
      case 'name':
        return { id: 'name', text: `The name must be 200 characters or fewer (${p.message})` };
      case 'grace_s':
        return { id: 'grace_s', text: `Enter a grace period from 0 to 3600 seconds (${p.message})` };
      case 'kind':
        return { id: 'kind', text: 'Select the kind of zone' };
      default:
        return { id: shape === 'circle' ? 'radius_m' : 'vertices', text: `The zone is not valid: ${p.message}` };
    }
  });
}

/** Rows to show: the filled ones, then blank ones. */
export function rowsOf<T>(filled: T[], blank: () => T): T[] {
  return [...filled, ...Array.from({ length: BLANK_ROWS }, blank)];
}

import { parse } from 'csv-parse/sync';

/**
 * Crime batch rows of contract §8: the 13-column CSV police forces send (UTF-8, no header) or
 * the same fields as JSON. Pure: each row is checked alone; `now` (epoch ms) refuses windows in
 * the future. Coordinates stay as sent; conversion from the National Grid is `grid.ts`'s.
 */

export const CRIME_TYPES = ['RB', 'BIAD', 'AB', 'BOTD', 'TOMV', 'TFP', 'TFMV'] as const;
export type CrimeType = (typeof CRIME_TYPES)[number];

/** ms: the longest window a crime may have */
export const MAX_WINDOW_MS = 12 * 3_600_000;
export const COLUMNS = 13;

export interface CrimeRow {
  /** 1-based row number in the file (or index + 1 in a JSON array) */
  row: number;
  force: string;
  crime_type: CrimeType;
  batch_id: string;
  crime_ref: string;
  /** epoch ms, UTC */
  from: number;
  to: number;
  location: { datum: 'OSGB36'; easting: number; northing: number } | { datum: 'WGS84'; lat: number; lon: number };
  free_text: string;
}

export interface RowError {
  row: number;
  reason: string;
}

/** The fields of one row, by name: the JSON form of a row and what the CSV columns map to. */
export interface CrimeFields {
  force?: unknown;
  crime_type?: unknown;
  batch_id?: unknown;
  crime_ref?: unknown;
  from?: unknown;
  to?: unknown;
  easting?: unknown;
  northing?: unknown;
  lat?: unknown;
  lon?: unknown;
  datum?: unknown;
  free_text?: unknown;
}

export type ParsedBatch = { ok: true; rows: CrimeRow[]; errors: RowError[] } | { ok: false; reason: string };

/** Parses a CSV body: refuses a file that is not UTF-8 or not CSV; otherwise checks each row alone. */
export function parseCrimeCsv(body: Buffer, now: number): ParsedBatch {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { ok: false, reason: 'the file is not UTF-8' };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let records: string[][];
  try {
    records = parse(text, { relax_column_count: true, relax_quotes: true, skip_empty_lines: true, trim: false, bom: true }) as string[][];
  } catch (err) {
    return { ok: false, reason: `not CSV: ${(err as Error).message.split('\n')[0]}` };
  }
  if (records.length === 0) return { ok: false, reason: 'the file has no rows' };
  const rows: CrimeRow[] = [];
  const errors: RowError[] = [];
  records.forEach((cols, i) => {
    const row = i + 1;
    if (cols.length !== COLUMNS) return errors.push({ row, reason: `${cols.length} columns, expected ${COLUMNS}` });
    if (row === 1 && looksLikeHeader(cols)) return errors.push({ row, reason: 'a header row: the format has none' });
    const [force, crime_type, , batch_id, crime_ref, from, to, easting, northing, lat, lon, datum, free_text] = cols;
    const r = checkRow(row, { force, crime_type, batch_id, crime_ref, from, to, easting, northing, lat, lon, datum, free_text }, now);
    if ('reason' in r) errors.push(r);
    else rows.push(r);
  });
  return { ok: true, ...sameBatch(rows, errors) };
}

/** Checks JSON rows (`CrimeFields` each) the same way as CSV rows. */
export function parseCrimeJson(items: readonly CrimeFields[], now: number): ParsedBatch {
  if (items.length === 0) return { ok: false, reason: 'the batch has no rows' };
  const rows: CrimeRow[] = [];
  const errors: RowError[] = [];
  items.forEach((item, i) => {
    const r = checkRow(i + 1, item, now);
    if ('reason' in r) errors.push(r);
    else rows.push(r);
  });
  return { ok: true, ...sameBatch(rows, errors) };
}

function looksLikeHeader(cols: string[]): boolean {
  return !CRIME_TYPES.includes(cols[1]?.trim() as CrimeType) && !/^\d{14}$/.test(cols[5]?.trim() ?? '');
}

/** Every row of one upload belongs to the batch id of its first good row. */
function sameBatch(rows: CrimeRow[], errors: RowError[]): { rows: CrimeRow[]; errors: RowError[] } {
  const id = rows[0]?.batch_id;
  const kept: CrimeRow[] = [];
  const seen = new Map<string, number>();
  for (const r of rows) {
    if (r.batch_id !== id) errors.push({ row: r.row, reason: `batch id ${r.batch_id} differs from the batch's ${id}` });
    else if (seen.has(r.crime_ref)) errors.push({ row: r.row, reason: `crime reference ${r.crime_ref} repeats row ${seen.get(r.crime_ref)}` });
    else {
      seen.set(r.crime_ref, r.row);
      kept.push(r);
    }
  }
  errors.sort((a, b) => a.row - b.row);
  return { rows: kept, errors };
}

const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : '');

/** yyyyMMddHHmmss (UTC) to epoch ms, or null when it is not a real time. */
export function parseCompactUtc(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  const back = new Date(t);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi || back.getUTCSeconds() !== se) return null;
  return t;
}

function num(v: unknown): number | null | undefined {
  const s = str(v);
  if (s === '') return undefined;
  if (!/^-?\d+(\.\d+)?$/.test(s)) return null;
  return Number(s);
}

/** One row's checks, in the order a reader would fix them; the first failure is the reason. */
export function checkRow(row: number, f: CrimeFields, now: number): CrimeRow | RowError {
  const bad = (reason: string): RowError => ({ row, reason });
  const force = str(f.force);
  if (!/^[A-Z]+(_[A-Z]+)*$/.test(force)) return bad(`police force "${force.slice(0, 40)}" is not a name in capitals with underscores`);
  const type = str(f.crime_type);
  if (!CRIME_TYPES.includes(type as CrimeType)) return bad(`unknown crime type "${type.slice(0, 20)}" (one of ${CRIME_TYPES.join(', ')})`);
  const batchId = str(f.batch_id);
  if (!/^[A-Z]{2,10}\d{8}$/.test(batchId) || parseCompactUtc(`${batchId.slice(-8)}000000`) === null) return bad(`batch id "${batchId.slice(0, 30)}" is not a force code and a date yyyyMMdd`);
  const ref = str(f.crime_ref);
  if (ref === '') return bad('missing crime reference');
  if (ref.length > 64) return bad('crime reference longer than 64 characters');
  const from = parseCompactUtc(str(f.from));
  const to = parseCompactUtc(str(f.to));
  if (from === null) return bad('from is not a date yyyyMMddHHmmss');
  if (to === null) return bad('to is not a date yyyyMMddHHmmss');
  if (to < from) return bad('to is before from');
  if (to - from > MAX_WINDOW_MS) return bad('the window is over 12 hours');
  if (to > now) return bad('the window ends in the future');
  const [e, n, lat, lon] = [num(f.easting), num(f.northing), num(f.lat), num(f.lon)];
  const grid = e !== undefined || n !== undefined;
  const wgs = lat !== undefined || lon !== undefined;
  if (grid === wgs) return bad(grid ? 'both an easting/northing and a latitude/longitude: send one pair' : 'no location: send an easting/northing or a latitude/longitude');
  const datum = str(f.datum);
  let location: CrimeRow['location'];
  if (grid) {
    if (e == null || n == null) return bad('easting and northing must both be numbers');
    if (e < 0 || e > 600_000 || n < 0 || n > 1_300_000) return bad('easting or northing out of range (0..600000, 0..1300000)');
    if (datum !== 'OSGB36') return bad('datum must be OSGB36 with an easting and northing');
    location = { datum: 'OSGB36', easting: e, northing: n };
  } else {
    if (lat == null || lon == null) return bad('latitude and longitude must both be numbers');
    if (lat < 49.5 || lat > 61.5 || lon < -8.5 || lon > 2.6) return bad('latitude or longitude out of range (49.5..61.5, -8.5..2.6)');
    if (datum !== 'WGS84') return bad('datum must be WGS84 with a latitude and longitude');
    location = { datum: 'WGS84', lat, lon };
  }
  const text = typeof f.free_text === 'string' ? f.free_text : '';
  if (text.length > 2000) return bad('free text longer than 2000 characters');
  return { row, force, crime_type: type as CrimeType, batch_id: batchId, crime_ref: ref, from, to, location, free_text: text };
}

/** A text cell for a CSV export: quoted, and a leading = + - @ tab or CR neutralised so no spreadsheet runs it. */
export function csvCell(v: string | number | null): string {
  if (v === null) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n']/.test(s) || s !== String(v) ? `"${s.replace(/"/g, '""')}"` : s;
}

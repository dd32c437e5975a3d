import { createHash } from 'node:crypto';
import { csvCell } from '../crime/batch.js';

/**
 * The data of an evidence pack (an alert, a subject's period, a crime match) and its two
 * companion files, CSV and GeoJSON. Pure and deterministic: the same data gives the same bytes
 * (no generation time, fixed column and key order), so the SHA-256 printed in the PDF matches
 * every later download of the same evidence. Positions WGS84 degrees, distances metres, times
 * ISO 8601 UTC.
 */

export interface PackFix {
  /** 1-based: the number drawn beside the fix in the PDF's diagram */
  n: number;
  /** device time, ISO UTC */
  ts: string;
  /** when the reading reached the service, ISO UTC (null: not stored) */
  received_at: string | null;
  lat: number;
  lon: number;
  /** m: radius of the error circle */
  accuracy_m: number;
  /** inside / outside / uncertain against the zone; within / overlaps / reachable against a crime; null: not classed */
  class: string | null;
  device_id: string | null;
  /** m: distance to the crime (crime matches only) */
  distance_m: number | null;
}

export interface PackZone {
  id: string;
  name: string;
  kind: 'exclusion' | 'inclusion';
  geometry: { type: 'Polygon'; coordinates: number[][][] } | { type: 'MultiPolygon'; coordinates: number[][][][] } | { type: 'Point'; coordinates: number[] };
  /** m: the radius of a circle zone (Point geometry) */
  radius_m: number | null;
}

/** A crime and its radius R (m). */
export interface PackTarget {
  label: string;
  lat: number;
  lon: number;
  radius_m: number;
}

export interface PackData {
  /** what the pack is of, e.g. "alert 7d1…", "subject S-1, 2026-12-01T00:00Z to …" */
  reference: string;
  subject: { id: string; display_name: string };
  zones: PackZone[];
  target: PackTarget | null;
  fixes: PackFix[];
}

export interface Companion {
  filename: string;
  body: string;
  sha256: string;
}

export const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

const CSV_HEADER = ['reference', 'subject_id', 'display_name', 'n', 'device_time_utc', 'received_utc', 'lat', 'lon', 'accuracy_m', 'class', 'device_id', 'distance_m'];

/** The fixes as CSV (RFC 4180, CRLF), every text cell through csvCell: a cell starting = + - @ tab or CR cannot run as a formula. */
export function evidenceCsv(d: PackData): string {
  const lines = [CSV_HEADER.join(',')];
  for (const f of d.fixes) {
    lines.push(
      [d.reference, d.subject.id, d.subject.display_name, f.n, f.ts, f.received_at, f.lat, f.lon, f.accuracy_m, f.class, f.device_id, f.distance_m === null ? null : Math.round(f.distance_m * 10) / 10]
        .map((v) => csvCell(v))
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** The zones, the crime (a Point with its radius) and the fixes as a GeoJSON FeatureCollection (RFC 7946: lon, lat). */
export function evidenceGeoJson(d: PackData): string {
  const features: unknown[] = [];
  for (const z of d.zones) {
    features.push({ type: 'Feature', geometry: z.geometry, properties: { role: 'zone', zone_id: z.id, name: z.name, kind: z.kind, radius_m: z.radius_m } });
  }
  if (d.target) {
    features.push({ type: 'Feature', geometry: { type: 'Point', coordinates: [d.target.lon, d.target.lat] }, properties: { role: 'crime', label: d.target.label, radius_m: d.target.radius_m } });
  }
  for (const f of d.fixes) {
    features.push({
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [f.lon, f.lat] },
      properties: { role: 'fix', n: f.n, device_time: f.ts, received_at: f.received_at, accuracy_m: f.accuracy_m, class: f.class, device_id: f.device_id, distance_m: f.distance_m },
    });
  }
  const doc = { type: 'FeatureCollection', properties: { reference: d.reference, subject_id: d.subject.id }, features };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Both companions with their SHA-256 (hex, of the UTF-8 bytes served). `base` names the files. */
export function companions(d: PackData, base: string): { csv: Companion; geojson: Companion } {
  const csv = evidenceCsv(d);
  const geojson = evidenceGeoJson(d);
  return {
    csv: { filename: `${base}.csv`, body: csv, sha256: sha256(Buffer.from(csv, 'utf8')) },
    geojson: { filename: `${base}.geojson`, body: geojson, sha256: sha256(Buffer.from(geojson, 'utf8')) },
  };
}

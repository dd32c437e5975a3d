import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import proj4 from 'proj4';
import { EPSG_27700 } from '../../crime/grid.js';

/**
 * bench:crime data: subjects spread over England and Wales (homes uniform in a box of about
 * 400 x 450 km, some in the sea), each with one GPS tag fitted for the whole period, one fix a
 * minute moving on a loop of up to 3 km around home; crimes as a force's batch. Deterministic.
 */

const M_PER_DEG = 111_320;
const MIN = 60_000;
const H = 3_600_000;
const toGrid = proj4('WGS84', EPSG_27700);

function frac(a: number, b: number): number {
  const x = Math.sin(a * 12.9898 + b * 78.233) * 43758.5453;
  return x - Math.floor(x);
}

export interface Subject {
  id: string;
  device: string;
  lat: number;
  lon: number;
  /** m, loop radius */
  amp: number;
  /** rad per ms */
  w: number;
  phase: number;
  /** [from, to) of one silence a day (ms from the day's start), or none */
  gap: [number, number] | null;
}

export function planSubjects(n: number, seed: number): Subject[] {
  return Array.from({ length: n }, (_, i) => {
    const f = (k: number) => frac(seed + i, k);
    const gapLen = f(7) < 0.3 ? f(8) * 90 * MIN : 0;
    const gapAt = f(9) * 23 * H;
    return {
      id: `bs-${String(i).padStart(5, '0')}`,
      device: `bd-${String(i).padStart(5, '0')}`,
      lat: 50.7 + 4.1 * f(1),
      lon: -3.5 + 3.9 * f(2),
      amp: 200 + 2800 * f(3),
      w: (2 * Math.PI) / ((1 + 4 * f(4)) * H),
      phase: 2 * Math.PI * f(5),
      gap: gapLen ? [gapAt, gapAt + gapLen] : null,
    };
  });
}

/** Where subject s is at t (ms): on its loop. */
export function positionAt(s: Subject, t: number): { lat: number; lon: number } {
  const a = s.w * t + s.phase;
  return { lat: s.lat + (s.amp * Math.sin(a)) / M_PER_DEG, lon: s.lon + (s.amp * Math.cos(a * 0.7)) / (M_PER_DEG * Math.cos((s.lat * Math.PI) / 180)) };
}

/** The fix of subject s in minute m (epoch minutes), or null in its daily silence. */
export function fixAt(s: Subject, m: number): { ts: number; lat: number; lon: number; acc: number } | null {
  const ts = m * MIN + Math.floor(frac(m, s.lat) * 10_000);
  if (s.gap) {
    const inDay = ts % (24 * H);
    if (inDay >= s.gap[0] && inDay < s.gap[1]) return null;
  }
  const p = positionAt(s, ts);
  const u = frac(m, s.lon);
  const acc = u < 0.9 ? 5 + 25 * frac(u, m) ** 2 : u < 0.98 ? 30 + 90 * frac(u, m) : 500 + 1000 * frac(u, m);
  // the reported position is off the true one by up to the accuracy
  const e = acc * (frac(m, u) - 0.5);
  return { ts, lat: p.lat + e / M_PER_DEG, lon: p.lon, acc: Math.round(acc * 10) / 10 };
}

/** Registers devices, subjects and fittings from `fittedFrom` (ms) with plain SQL (not timed). */
export async function registerSubjects(pool: pg.Pool, subjects: Subject[], fittedFrom: number): Promise<void> {
  const ids = subjects.map((s) => s.id);
  const devs = subjects.map((s) => s.device);
  await pool.query(`INSERT INTO devices (id, kind, active) SELECT unnest($1::text[]), 'gps', true ON CONFLICT DO NOTHING`, [devs]);
  await pool.query(
    `INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) SELECT id, 'Bench ' || id, 'fixed', 'amber', ARRAY['om-1'] FROM unnest($1::text[]) id ON CONFLICT DO NOTHING`,
    [ids],
  );
  await pool.query(`INSERT INTO assignments (subject_id, device_id, start_at) SELECT s, d, $3::timestamptz FROM unnest($1::text[], $2::text[]) AS u(s, d)`, [ids, devs, new Date(fittedFrom)]);
}

/**
 * COPYs every fix of [fromMs, toMs) into readings; returns the rows written. The per-row trigger
 * that logs the hours written (gps_hour_log) is off during the COPY; the hours are logged after,
 * in one statement, as the trigger would have.
 */
export async function copyFixes(pool: pg.Pool, subjects: Subject[], fromMs: number, toMs: number): Promise<number> {
  await pool.query(`ALTER TABLE readings DISABLE TRIGGER readings_gps_hour_log`);
  try {
    const n = await copyFixesRaw(pool, subjects, fromMs, toMs);
    await pool.query(
      `INSERT INTO gps_hour_log (hour, xid) SELECT h, pg_current_xact_id() FROM generate_series(date_trunc('hour', $1::timestamptz, 'UTC'), $2::timestamptz, interval '1 hour') h ON CONFLICT DO NOTHING`,
      [new Date(fromMs), new Date(toMs)],
    );
    return n;
  } finally {
    await pool.query(`ALTER TABLE readings ENABLE TRIGGER readings_gps_hour_log`);
  }
}

async function copyFixesRaw(pool: pg.Pool, subjects: Subject[], fromMs: number, toMs: number): Promise<number> {
  let rows = 0;
  const first = Math.ceil(fromMs / MIN);
  const last = Math.floor(toMs / MIN);
  function* lines(): Generator<string> {
    for (const s of subjects) {
      let chunk = '';
      for (let m = first; m < last; m++) {
        const f = fixAt(s, m);
        if (!f) continue;
        rows++;
        const ts = new Date(f.ts).toISOString();
        chunk += `${s.device}\tgps\t${ts}\t${new Date(f.ts + 20_000).toISOString()}\t${f.lat.toFixed(6)}\t${f.lon.toFixed(6)}\t${f.acc}\t{}\n`;
        if (chunk.length > 1 << 16) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    }
  }
  const client = await pool.connect();
  try {
    const stream = client.query(copyFrom(`COPY readings (device_id, stream, ts, received_at, lat, lon, accuracy_m, data) FROM STDIN`));
    await pipeline(Readable.from(lines()), stream);
  } finally {
    client.release();
  }
  return rows;
}

const TYPES = ['BIAD', 'TFMV', 'TFP', 'RB', 'BOTD', 'TOMV', 'AB'];
const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);

/**
 * A batch of n crimes with windows of up to 12 h inside [fromMs, toMs]: a quarter on a subject's
 * path during the window (up to 150 m off), the rest within 5 km of a subject's home.
 */
export function crimeCsv(subjects: Subject[], n: number, fromMs: number, toMs: number, batchId: string, seed: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = (k: number) => frac(seed * 7919 + i, k);
    const len = f(1) < 0.3 ? f(2) * H : f(2) * 12 * H;
    const start = Math.floor((fromMs + f(3) * (toMs - fromMs - len)) / 1000) * 1000;
    const end = start + Math.floor(len / 1000) * 1000;
    const s = subjects[Math.floor(f(4) * subjects.length)]!;
    let p: { lat: number; lon: number };
    if (f(5) < 0.25) {
      const q = positionAt(s, start + f(6) * (end - start));
      p = { lat: q.lat + (150 * (f(7) - 0.5)) / M_PER_DEG, lon: q.lon };
    } else p = { lat: s.lat + (10_000 * (f(6) - 0.5)) / M_PER_DEG, lon: s.lon + (10_000 * (f(7) - 0.5)) / (M_PER_DEG * 0.62) };
    const loc =
      i % 2 === 0
        ? `${(toGrid.forward([p.lon, p.lat]) as [number, number]).map((v) => Math.round(v)).join(',')},,,OSGB36`
        : `,,${p.lat.toFixed(6)},${p.lon.toFixed(6)},WGS84`;
    out.push(`BENCH_FORCE,${TYPES[i % TYPES.length]},,${batchId},B${seed}/${i},${compact(start)},${compact(end)},${loc},bench crime ${i}`);
  }
  return out.join('\n') + '\n';
}

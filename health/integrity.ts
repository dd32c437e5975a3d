/**
 * Monitoring integrity (issue 14 §4): is a fitted subject actually being monitored? Pure. From
 * the subject's fittings and per-hour counts of stored readings (device time), decides per
 * stream and hour how many readings were expected and how many came, and whether the subject is
 * in a monitoring gap at `now`. Times are epoch ms; hours are UTC hours (every hour is 60
 * minutes, so DST days simply have 23 or 25 of them in local time).
 *
 * Expected readings: a fitted GPS-capable device should give a fix at least every
 * `gpsFixMinutes` (default 15: a tag that reports but is 4 fixes short an hour has lost its GPS),
 * an alcohol-capable device a reading every `alcoholReadingMinutes` (default 30, contract §4).
 * Expected = fitted minutes of the hour / cadence (fractional for a part-fitted hour).
 */

export type MonitoredStream = 'gps' | 'alcohol';
export const MONITORED_STREAMS: readonly MonitoredStream[] = ['gps', 'alcohol'];
export type DeviceKind = 'gps' | 'alcohol' | 'combined';

export interface IntegrityParams {
  /** minutes between GPS fixes a fitted device must at least achieve */
  gpsFixMinutes: number;
  /** minutes between alcohol readings (contract §4: about every 30 minutes) */
  alcoholReadingMinutes: number;
  /** an hour is thin when received < gapRatio × expected */
  gapRatio: number;
  /** an hour is judged only when at least this many of its minutes were fitted (and past) */
  minJudgedMinutes: number;
  /** contract §4: a monitored day has readings covering at least this many hours of 24 */
  coveredHoursPerDay: number;
}

export const DEFAULT_INTEGRITY: IntegrityParams = { gpsFixMinutes: 15, alcoholReadingMinutes: 30, gapRatio: 0.5, minJudgedMinutes: 30, coveredHoursPerDay: 20 };

/** The parameters from the settings MONITORING_GPS_FIX_MINUTES and MONITORING_ALCOHOL_READING_MINUTES (the rest fixed). */
export function integrityParams(s: { MONITORING_GPS_FIX_MINUTES: number; MONITORING_ALCOHOL_READING_MINUTES: number }): IntegrityParams {
  return { ...DEFAULT_INTEGRITY, gpsFixMinutes: s.MONITORING_GPS_FIX_MINUTES, alcoholReadingMinutes: s.MONITORING_ALCOHOL_READING_MINUTES };
}

export const HOUR_MS = 3_600_000;
const MIN_MS = 60_000;

export interface Fitting {
  start: number;
  /** null while fitted */
  end: number | null;
  kind: DeviceKind;
}

/** Readings of one stream whose device time falls in the UTC hour starting at `hour` (inside a fitting). */
export interface HourCount {
  stream: MonitoredStream;
  hour: number;
  received: number;
}

export interface StreamHour {
  fitted_minutes: number;
  expected: number;
  received: number;
}

export interface HourRow {
  hour: number;
  /** null: no device of that stream fitted in this hour */
  gps: StreamHour | null;
  alcohol: StreamHour | null;
}

export type GapReason = 'below_expected_last_hour' | 'alcohol_coverage_below_day_rule';

export interface StreamGap {
  gap: boolean;
  reasons: GapReason[];
  /** the hour judged (the current one once minJudgedMinutes of it have passed, else the last full one), or null when none could be */
  judged: ({ hour: number } & StreamHour) | null;
}

export interface AlcoholGap extends StreamGap {
  /** over the 24 full hours before now: hours judged and hours not thin */
  fitted_hours_24h: number;
  covered_hours_24h: number;
}

export interface GapStatus {
  gps: StreamGap;
  alcohol: AlcoholGap;
  gap: boolean;
}

export const floorHour = (t: number): number => Math.floor(t / HOUR_MS) * HOUR_MS;

export function streamsOf(kind: DeviceKind): MonitoredStream[] {
  return kind === 'combined' ? ['gps', 'alcohol'] : [kind];
}

/** Minutes of [from, to) covered by the union of the fittings able to report `stream`. */
export function fittedMinutes(fittings: readonly Fitting[], stream: MonitoredStream, from: number, to: number): number {
  const spans = fittings
    .filter((f) => streamsOf(f.kind).includes(stream))
    .map((f) => [Math.max(f.start, from), Math.min(f.end ?? Infinity, to)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let reach = -Infinity;
  for (const [a, b] of spans) {
    const start = Math.max(a, reach);
    if (b > start) total += b - start;
    reach = Math.max(reach, b);
  }
  return total / MIN_MS;
}

function cadence(stream: MonitoredStream, p: IntegrityParams): number {
  return stream === 'gps' ? p.gpsFixMinutes : p.alcoholReadingMinutes;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** One stream in the hour starting at `hour`, counting only fitted minutes before `now`; null when none. */
export function streamHour(fittings: readonly Fitting[], counts: ReadonlyMap<string, number>, stream: MonitoredStream, hour: number, now: number, p: IntegrityParams): StreamHour | null {
  const minutes = fittedMinutes(fittings, stream, hour, Math.min(hour + HOUR_MS, now));
  if (minutes <= 0) return null;
  return { fitted_minutes: round2(minutes), expected: round2(minutes / cadence(stream, p)), received: counts.get(`${stream}|${hour}`) ?? 0 };
}

const keyed = (counts: readonly HourCount[]) => new Map(counts.map((c) => [`${c.stream}|${c.hour}`, c.received]));

/** Expected and received per stream for each UTC hour overlapping [from, to), up to `now`. */
export function hourTable(fittings: readonly Fitting[], counts: readonly HourCount[], from: number, to: number, now: number, p: IntegrityParams = DEFAULT_INTEGRITY): HourRow[] {
  const byKey = keyed(counts);
  const rows: HourRow[] = [];
  for (let h = floorHour(from); h < Math.min(to, now); h += HOUR_MS) {
    rows.push({ hour: h, gps: streamHour(fittings, byKey, 'gps', h, now, p), alcohol: streamHour(fittings, byKey, 'alcohol', h, now, p) });
  }
  return rows;
}

const thin = (s: StreamHour, p: IntegrityParams) => s.received < p.gapRatio * s.expected;

/**
 * Whether the subject is in a monitoring gap at `now`, per stream:
 * - the judged hour (the current hour once `minJudgedMinutes` fitted minutes of it have passed,
 *   otherwise the last full hour if that had as many) received under `gapRatio` of expected;
 * - alcohol only: over the 24 full hours before now, the judged hours that were not thin are
 *   fewer than coveredHoursPerDay / 24 of the judged hours (the day is heading below 20 h).
 * `counts` must cover the current hour and the 24 full hours before it.
 */
export function monitoringGap(fittings: readonly Fitting[], counts: readonly HourCount[], now: number, p: IntegrityParams = DEFAULT_INTEGRITY): GapStatus {
  const byKey = keyed(counts);
  const current = floorHour(now);
  const judge = (stream: MonitoredStream): StreamGap => {
    for (const hour of [current, current - HOUR_MS]) {
      const s = streamHour(fittings, byKey, stream, hour, now, p);
      if (s && s.fitted_minutes >= p.minJudgedMinutes) return { gap: thin(s, p), reasons: thin(s, p) ? ['below_expected_last_hour'] : [], judged: { hour, ...s } };
    }
    return { gap: false, reasons: [], judged: null };
  };
  const gps = judge('gps');
  const base = judge('alcohol');
  let fitted = 0;
  let covered = 0;
  for (let h = current - 24 * HOUR_MS; h < current; h += HOUR_MS) {
    const s = streamHour(fittings, byKey, 'alcohol', h, now, p);
    if (!s || s.fitted_minutes < p.minJudgedMinutes) continue;
    fitted++;
    if (!thin(s, p)) covered++;
  }
  const trending = fitted > 0 && covered * 24 < p.coveredHoursPerDay * fitted;
  const alcohol: AlcoholGap = {
    gap: base.gap || trending,
    reasons: [...base.reasons, ...(trending ? (['alcohol_coverage_below_day_rule'] as const) : [])],
    judged: base.judged,
    fitted_hours_24h: fitted,
    covered_hours_24h: covered,
  };
  return { gps, alcohol, gap: gps.gap || alcohol.gap };
}

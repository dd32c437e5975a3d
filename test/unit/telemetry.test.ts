import { describe, expect, it } from 'vitest';
import { copyChunks } from '../../ingest/readings.repo.js';
import { parseMessage, parseTopic } from '../../ingest/telemetry.js';

const NOW = Date.parse('2026-11-10T12:00:00Z');
const parse = (topic: string, body: unknown) =>
  parseMessage(topic, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), NOW, 2190);
const gps = { ts: '2026-11-10T11:59:00Z', lat: 52.95, lon: -1.15, accuracy_m: 10 };

describe('parseTopic', () => {
  it.each([
    ['tags/v1/TAG-1/gps', { deviceId: 'TAG-1', stream: 'gps' }],
    ['tags/v1/ab_c/status', { deviceId: 'ab_c', stream: 'status' }],
    ['tags/v1/AB/gps', null], // id under 3 characters
    ['tags/v1/TAG-1/heart', null],
    ['tags/v2/TAG-1/gps', null],
    ['tags/v1/TAG 1/gps', null],
    [`tags/v1/${'x'.repeat(65)}/gps`, null],
  ])('%s', (topic, expected) => expect(parseTopic(topic)).toEqual(expected));
});

describe('parseMessage', () => {
  it('accepts a single reading and keeps unknown fields in data', () => {
    const r = parse('tags/v1/TAG-1/gps', { ...gps, vendor: { fw: '1.2' } });
    expect(r.rejections).toEqual([]);
    expect(r.readings).toEqual([
      expect.objectContaining({ deviceId: 'TAG-1', stream: 'gps', ts: gps.ts, tsMs: Date.parse(gps.ts), lat: 52.95, lon: -1.15, accuracy_m: 10, tac: null, data: { ...gps, vendor: { fw: '1.2' } } }),
    ]);
  });

  it.each([
    ['gps', { ...gps, lat: 90.0001 }, /^invalid: gps\.lat: /],
    ['gps', { ...gps, lon: -180.5 }, /^invalid: gps\.lon: /],
    ['gps', { ...gps, accuracy_m: 0 }, /^invalid: gps\.accuracy_m: /],
    ['gps', { ...gps, accuracy_m: 10001 }, /^invalid: gps\.accuracy_m: /],
    ['gps', { ...gps, heading_deg: 360 }, /^invalid: gps\.heading_deg: /],
    ['gps', { ...gps, fix: 'glonass' }, /^invalid: gps\.fix: /],
    ['gps', { ...gps, sats: 3.5 }, /^invalid: gps\.sats: /],
    ['gps', { ...gps, lat: '52.9' }, /^invalid: gps\.lat: /],
    ['gps', { ts: gps.ts, lon: -1, accuracy_m: 5 }, /^invalid: gps\.lat: /],
    ['gps', { ...gps, lat: 0, lon: 0 }, /^null_island: /],
    ['alcohol', { ts: gps.ts, tac: -0.001, temp_c: 30 }, /^invalid: alcohol\.tac: /],
    ['alcohol', { ts: gps.ts, tac: 1.01, temp_c: 30 }, /^invalid: alcohol\.tac: /],
    ['alcohol', { ts: gps.ts, tac: 0.02 }, /^invalid: alcohol\.temp_c: /],
    ['alcohol', { ts: gps.ts, tac: 0.02, temp_c: 30, ir: 5.5 }, /^invalid: alcohol\.ir: /],
    ['status', { ts: gps.ts, battery_pct: 101 }, /^invalid: status\.battery_pct: /],
    ['status', { ts: gps.ts, battery_pct: 50, strap: 'cut' }, /^invalid: status\.strap: /],
    ['status', { ts: gps.ts, battery_pct: 50, event: 'reboot' }, /^invalid: status\.event: /],
    ['status', { ts: '2026-11-10 11:00:00', battery_pct: 50 }, /^invalid: status\.ts: /],
    ['status', { ts: '2026-02-30T10:00:00Z', battery_pct: 50 }, /^invalid: status\.ts: .* not a real date-time/],
    ['status', { ts: '2026-11-10T12:05:01Z', battery_pct: 50 }, /^ts_future: /],
    ['status', { ts: '2020-11-10T12:00:00Z', battery_pct: 50 }, /^ts_too_old: /],
    ['status', [1, 2], /^invalid: item 0: a reading must be a JSON object/],
  ])('%s %j is rejected', (stream, body, reason) => {
    const r = parse(`tags/v1/TAG-1/${stream}`, body);
    expect(r.readings).toEqual(Array.isArray(body) ? [] : []);
    expect(r.rejections[0]!.reason).toMatch(reason);
    expect(r.rejections[0]!.deviceId).toBe('TAG-1');
  });

  it('accepts a ts exactly 5 minutes ahead, offsets and fractional seconds', () => {
    const r = parse('tags/v1/TAG-1/status', [
      { ts: '2026-11-10T12:05:00Z', battery_pct: 50 },
      { ts: '2026-11-10T12:30:00.123+01:00', battery_pct: 50 },
      { ts: '2026-11-10T06:00:00.123456-05:00', battery_pct: 50 },
    ]);
    expect(r.rejections).toEqual([]);
    expect(r.readings.map((x) => x.tsMs)).toEqual([Date.parse('2026-11-10T12:05:00Z'), Date.parse('2026-11-10T11:30:00.123Z'), Date.parse('2026-11-10T11:00:00.123Z')]);
  });

  it('keeps the good items of a batch and rejects each bad one alone', () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ ...gps, ts: new Date(NOW - 3600_000 + i * 1000).toISOString() }));
    (items[3] as Record<string, unknown>).lat = 123;
    (items[4] as Record<string, unknown>).lat = 0;
    (items[4] as Record<string, unknown>).lon = 0;
    const r = parse('tags/v1/TAG-1/gps', items);
    expect(r.readings).toHaveLength(998);
    expect(r.rejections.map((x) => [x.itemIndex, x.code])).toEqual([
      [3, 'invalid'],
      [4, 'null_island'],
    ]);
    expect(JSON.parse(r.rejections[0]!.raw.toString())).toEqual(items[3]);
  });

  it.each([
    ['not json', '{"ts":', /^not_json: /],
    ['an empty batch', [], /^bad_batch: .* this one 0/],
    ['a batch of 1001', Array.from({ length: 1001 }, () => gps), /^bad_batch: .* this one 1001/],
  ])('rejects %s as a whole message', (_name, body, reason) => {
    const r = parse('tags/v1/TAG-1/gps', body);
    expect(r.readings).toEqual([]);
    expect(r.rejections).toHaveLength(1);
    expect(r.rejections[0]!.itemIndex).toBeNull();
    expect(r.rejections[0]!.reason).toMatch(reason);
  });

  it('rejects a payload over 256 KiB and keeps at most 64 KiB of its bytes', () => {
    const r = parseMessage('tags/v1/TAG-1/gps', Buffer.alloc(256 * 1024 + 1, 0x41), NOW, 2190);
    expect(r.rejections[0]!.code).toBe('too_large');
    expect(r.rejections[0]!.raw.length).toBe(64 * 1024);
  });

  it('rejects a bad topic without a device id', () => {
    const r = parse('tags/v1/x/gps', gps);
    expect(r.rejections[0]).toEqual(expect.objectContaining({ code: 'bad_topic', deviceId: null }));
  });
});

describe('reasons are storable text', () => {
  it('never carries a NUL character', () => {
    const r = parseMessage('tags/v1/TAG-1/gps', Buffer.from('{"a":\u0000'), NOW, 2190);
    expect(r.rejections[0]!.reason).not.toContain('\u0000');
  });
});

describe('device time checks (read from character codes)', () => {
  it.each([
    ['2024-02-29T10:00:00Z', true], // leap year
    ['2000-02-29T10:00:00Z', true], // divisible by 400
    ['2100-02-29T10:00:00Z', false], // divisible by 100, not 400
    ['2026-02-29T10:00:00Z', false],
    ['2026-04-31T10:00:00Z', false],
    ['2026-04-30T10:00:00Z', true],
    ['2025-12-31T23:59:59.999Z', true],
    ['2026-00-10T10:00:00Z', false],
    ['2026-11-00T10:00:00Z', false],
    ['2026-11-10T24:00:00Z', false],
    ['2026-11-10T10:60:00Z', false],
    ['2026-11-10T10:00:60Z', false],
    ['2026-11-10t11:00:00z', true], // lower-case t and z are RFC 3339 too
  ])('%s is a real date-time: %s', (ts, ok) => {
    const r = parseMessage('tags/v1/TAG-1/status', Buffer.from(JSON.stringify({ ts, battery_pct: 50 })), Date.parse('2026-11-10T12:00:00Z'), 36500);
    if (ok) {
      expect(r.rejections).toEqual([]);
      expect(r.readings[0]!.tsMs).toBe(Date.parse(ts.toUpperCase()));
    } else expect(r.rejections[0]!.reason).toMatch(/^invalid: status\.ts: .* not a real date-time/);
  });
});

describe('COPY text of readings', () => {
  it('writes one line per reading, \\N for absent columns, backslashes of the JSON doubled', () => {
    const r = parse('tags/v1/TAG-1/alcohol', [
      { ts: '2026-11-10T11:00:00Z', tac: 0.02, temp_c: 31.5, note: 'a\\b\t"c"\nd' },
      { ts: '2026-11-10T11:00:01Z', tac: 0, temp_c: -3, ir: 1.25 },
    ]);
    const text = Buffer.concat([...copyChunks(r.readings)]).toString('utf8');
    const lines = text.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    const first = lines[0]!.split('\t');
    expect(first.slice(0, 10)).toEqual(['TAG-1', 'alcohol', '2026-11-10T11:00:00Z', '\\N', '\\N', '\\N', '0.02', '31.5', '\\N', '\\N']);
    // COPY reads \\ as one backslash: undoing that gives the JSON of the reading
    expect(JSON.parse(first[10]!.replace(/\\\\/g, '\\'))).toEqual({ ts: '2026-11-10T11:00:00Z', tac: 0.02, temp_c: 31.5, note: 'a\\b\t"c"\nd' });
    expect(lines[1]!.split('\t').slice(6, 10)).toEqual(['0', '-3', '1.25', '\\N']);
  });
});

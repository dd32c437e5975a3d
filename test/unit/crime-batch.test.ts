import { describe, expect, it } from 'vitest';
import { checkRow, csvCell, parseCompactUtc, parseCrimeCsv, parseCrimeJson } from '../../crime/batch.js';

const NOW = Date.UTC(2026, 11, 2, 12, 0, 0);
const good = 'NOTTINGHAMSHIRE,BIAD,,NOT20261201,CR/1/26,20261130220000,20261201040000,457000,340000,,,OSGB36,rear door forced';
const wgs = 'NOTTINGHAMSHIRE,RB,,NOT20261201,CR/2/26,20261130220000,20261130230000,,,52.95,-1.15,WGS84,"phone taken, ""quickly"""';
const csv = (...rows: string[]) => Buffer.from(rows.join('\r\n') + '\r\n');

describe('crime batch CSV (contract §8)', () => {
  it('reads good rows in both datums, quoted free text included', () => {
    const r = parseCrimeCsv(csv(good, wgs), NOW);
    expect(r).toMatchObject({ ok: true, errors: [] });
    if (!r.ok) throw new Error('refused');
    expect(r.rows.map((x) => [x.row, x.crime_type, x.location.datum, x.from, x.to])).toEqual([
      [1, 'BIAD', 'OSGB36', Date.UTC(2026, 10, 30, 22), Date.UTC(2026, 11, 1, 4)],
      [2, 'RB', 'WGS84', Date.UTC(2026, 10, 30, 22), Date.UTC(2026, 10, 30, 23)],
    ]);
    expect(r.rows[1]!.free_text).toBe('phone taken, "quickly"');
  });

  const cases: Array<[string, string]> = [
    ['NOTTINGHAMSHIRE,BIAD,,NOT20261201,CR/1/26,20261130220000', '6 columns, expected 13'],
    [good + ',x'.repeat(187), '200 columns, expected 13'],
    [good.replace('BIAD', 'SHOP'), 'unknown crime type "SHOP" (one of RB, BIAD, AB, BOTD, TOMV, TFP, TFMV)'],
    [good.replace('20261130220000', '2026-11-30 22:00'), 'from is not a date yyyyMMddHHmmss'],
    [good.replace('20261201040000', '20261231250000'), 'to is not a date yyyyMMddHHmmss'],
    [good.replace('20261201040000', '20261130210000'), 'to is before from'],
    [good.replace('20261201040000', '20261201100001'), 'the window is over 12 hours'],
    [good.replace('457000,340000,,', '457000,340000,52.9,-1.1'), 'both an easting/northing and a latitude/longitude: send one pair'],
    [good.replace('457000,340000,,', ',,,'), 'no location: send an easting/northing or a latitude/longitude'],
    [good.replace('457000', '700000'), 'easting or northing out of range (0..600000, 0..1300000)'],
    [wgs.replace('52.95', '48.1'), 'latitude or longitude out of range (49.5..61.5, -8.5..2.6)'],
    [good.replace('CR/1/26', ''), 'missing crime reference'],
    [good.replace('OSGB36', 'WGS84'), 'datum must be OSGB36 with an easting and northing'],
    [good.replace('NOT20261201', 'NOT2026120'), 'batch id "NOT2026120" is not a force code and a date yyyyMMdd'],
  ];
  it.each(cases)('row 2 of %#: %s', (row, reason) => {
    const r = parseCrimeCsv(csv(good, row), NOW);
    expect(r).toEqual({ ok: true, rows: [expect.objectContaining({ row: 1 })], errors: [{ row: 2, reason }] });
  });

  it('refuses a window that ends in the future', () => {
    const r = parseCrimeCsv(csv(good), Date.UTC(2026, 11, 1, 3, 59, 59));
    expect(r).toEqual({ ok: true, rows: [], errors: [{ row: 1, reason: 'the window ends in the future' }] });
  });

  it('reports a header row', () => {
    const header = 'force,type,unused,batch,ref,from,to,easting,northing,lat,lon,datum,text';
    const r = parseCrimeCsv(csv(header, good), NOW);
    expect(r.ok && r.errors).toEqual([{ row: 1, reason: 'a header row: the format has none' }]);
  });

  it('refuses a file that is not UTF-8, and one with no rows', () => {
    expect(parseCrimeCsv(Buffer.from([0x41, 0xff, 0xfe, 0x0a]), NOW)).toEqual({ ok: false, reason: 'the file is not UTF-8' });
    expect(parseCrimeCsv(Buffer.from('\n\n'), NOW)).toEqual({ ok: false, reason: 'the file has no rows' });
  });

  it('keeps rows of the first batch id and reports the others', () => {
    const r = parseCrimeCsv(csv(good, wgs.replace('NOT20261201', 'NOT20261202')), NOW);
    expect(r.ok && r.errors).toEqual([{ row: 2, reason: "batch id NOT20261202 differs from the batch's NOT20261201" }]);
  });

  it('checks JSON rows the same way', () => {
    const row = { force: 'AVON_AND_SOMERSET', crime_type: 'TFMV', batch_id: 'AS20261201', crime_ref: 'X1', from: '20261130220000', to: '20261130230000', lat: 51.45, lon: -2.59, datum: 'WGS84', free_text: '' };
    const r = parseCrimeJson([row, { ...row, crime_type: 'X' }], NOW);
    expect(r.ok && r.rows.length).toBe(1);
    expect(r.ok && r.errors[0]!.row).toBe(2);
  });

  it('real dates only', () => {
    expect(parseCompactUtc('20260229000000')).toBeNull();
    expect(parseCompactUtc('20280229235959')).toBe(Date.UTC(2028, 1, 29, 23, 59, 59));
    expect(checkRow(1, {}, NOW)).toEqual({ row: 1, reason: 'police force "" is not a name in capitals with underscores' });
  });

  it('never exports a formula', () => {
    expect(csvCell('=cmd|/C calc!A0')).toBe(`"'=cmd|/C calc!A0"`);
    expect(csvCell('+1')).toBe(`"'+1"`);
    expect(csvCell('@SUM(A1)')).toBe(`"'@SUM(A1)"`);
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,"b"')).toBe('"a,""b"""');
    expect(csvCell(-1.5)).toBe('-1.5');
  });
});

describe('crime references within one batch', () => {
  it('reports a repeated crime reference as a row error and keeps the first', () => {
    const r = parseCrimeCsv(csv(good, good.replace('BIAD', 'AB')), NOW);
    expect(r).toEqual({ ok: true, rows: [expect.objectContaining({ row: 1, crime_type: 'BIAD' })], errors: [{ row: 2, reason: 'crime reference CR/1/26 repeats row 1' }] });
  });
});

describe('quotes inside an unquoted field', () => {
  it('keeps a formula-injection text as data instead of refusing the file', () => {
    const r = parseCrimeCsv(csv(good.replace('rear door forced', '=cmd|" /C calc"!A0')), NOW);
    expect(r.ok && r.rows[0]!.free_text).toBe('=cmd|" /C calc"!A0');
    expect(csvCell('=cmd|" /C calc"!A0')).toBe(`"'=cmd|"" /C calc""!A0"`);
  });
});

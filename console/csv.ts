import { stringify } from 'csv-stringify/sync';

/**
 * CSV for spreadsheets, safe from formula injection (OWASP "CSV injection"): csv-stringify
 * quotes the cells, and any text cell starting with =, +, -, @, a tab or a carriage return is
 * prefixed with a single quote so a spreadsheet shows it as text instead of running it.
 * Numbers are written as numbers. Pure.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export function safeCell(value: unknown): string | number {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? value : '';
  const s = String(value);
  return FORMULA_START.test(s) ? `'${s}` : s;
}

export function toCsv(header: string[], rows: unknown[][]): string {
  return stringify([header.map(safeCell), ...rows.map((r) => r.map(safeCell))], { quoted_string: true, record_delimiter: '\r\n' });
}

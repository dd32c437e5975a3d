import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A PDF's text through Debian's `pdftotext` (poppler-utils; scripts/test.sh installs it when
 * missing), after a structural check of the file: header, cross-reference and end marker.
 */
export function pdfText(pdf: Buffer): string {
  const head = pdf.subarray(0, 8).toString('latin1');
  const tail = pdf.subarray(-1024).toString('latin1');
  if (!/^%PDF-1\.\d/.test(head)) throw new Error(`not a PDF: starts ${JSON.stringify(head)}`);
  if (!/startxref\s+\d+\s+%%EOF\s*$/.test(tail)) throw new Error('not a complete PDF: no startxref / %%EOF at the end');
  if (!existsSync('/usr/bin/pdftotext')) throw new Error('pdftotext is missing: apt-get install poppler-utils (scripts/test.sh does)');
  const dir = mkdtempSync(join(tmpdir(), 'tagwatch-pdf-'));
  try {
    const file = join(dir, 'pack.pdf');
    writeFileSync(file, pdf);
    // pdftotext fails (exit 1..3) on a file it cannot parse: the PDF is valid to poppler when this returns
    return execFileSync('/usr/bin/pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The page count poppler reads (pdfinfo). */
export function pdfPages(pdf: Buffer): number {
  const dir = mkdtempSync(join(tmpdir(), 'tagwatch-pdf-'));
  try {
    const file = join(dir, 'pack.pdf');
    writeFileSync(file, pdf);
    const info = execFileSync('/usr/bin/pdfinfo', [file], { encoding: 'utf8' });
    return Number(/Pages:\s+(\d+)/.exec(info)?.[1] ?? 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The folders form a stack: each may import only folders below it (type imports count too).
 * Order, top first; folders on one line are peers and may not import each other.
 */
export const LAYERS: string[][] = [
  ['app'],
  ['console'],
  ['evaluation'],
  ['crime'],
  ['geofence', 'alcohol', 'health'],
  ['alerts'],
  ['ingest'],
  ['signals'],
  ['registry'],
  ['platform'],
];

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, LAYERS.length - i] as const)));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(ts|mts)$/.test(name) ? [p] : [];
  });
}

/** Relative specifiers of static imports, re-exports, `import type` and dynamic `import()`. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[2]!);
  return out;
}

/** Every import that goes sideways or up the stack, as `from -> to`. */
export function violations(root: string): string[] {
  const bad: string[] = [];
  for (const top of rank.keys()) {
    let files: string[];
    try {
      files = sources(join(root, top));
    } catch {
      continue; // a layer not written yet
    }
    for (const file of files) {
      const rel = relative(root, file).split('\\').join('/');
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        const target = posix.normalize(posix.join(posix.dirname(rel), spec));
        const to = target.split('/')[0]!;
        if (to === top) continue;
        const r = rank.get(to);
        if (r === undefined || r >= rank.get(top)!) bad.push(`${rel} -> ${target}`);
      }
    }
  }
  return bad;
}

describe('layers', () => {
  it('finds static, type and dynamic imports', () => {
    const text = `import type { A } from '../ingest/x.js';\nexport { b } from "./b.js";\nconst c = await import('../app/c.js');\nimport '../d.js';`;
    expect(specifiers(text)).toEqual(['../ingest/x.js', './b.js', '../app/c.js', '../d.js']);
  });

  it('reports an upward import', () => {
    const dir = join(ROOT, 'test', 'fixtures', 'layers');
    expect(violations(dir)).toEqual(['platform/up.ts -> ingest/x.js']);
  });

  it('each folder imports only folders below it', () => {
    expect(violations(ROOT)).toEqual([]);
  });
});

/**
 * Bundles the console's browser scripts (browser/pages/*.ts, one bundle a page, OpenLayers
 * shared in chunks) with esbuild into console/public/js/, which the console serves under
 * /console/assets/js/. Run by `npm run build`, `npm run demo` and the test set-up; `npm run bundle`
 * alone. The output is not committed.
 */
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE_DIR = join(ROOT, 'console', 'public', 'js');

export async function bundle(): Promise<string[]> {
  const pages = join(ROOT, 'browser', 'pages');
  const entryPoints = readdirSync(pages).filter((f) => f.endsWith('.ts')).map((f) => join(pages, f));
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  const r = await build({
    entryPoints,
    outdir: BUNDLE_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    chunkNames: 'chunk-[hash]',
    metafile: true,
    logLevel: 'warning',
    legalComments: 'external',
  });
  return Object.keys(r.metafile.outputs);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await bundle();
  console.log(`bundle: ${files.length} files in ${BUNDLE_DIR}`);
}

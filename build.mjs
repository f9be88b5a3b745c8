// Bundles src/main.ts into the one file that users copy: dist/hbeat.js.
// `node build.mjs --check` builds in memory and fails when the committed file
// differs, so CI catches a dist/ that was not rebuilt.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';

const out = 'dist/hbeat.js';
const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
const result = await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  // CommonJS, so that the file runs on its own, with no package.json beside it.
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  define: { HBEAT_VERSION: JSON.stringify(version) },
  legalComments: 'none',
  // Whitespace and syntax minified: a short-lived `pick` parses the whole file
  // before it reads a slot, and a smaller file parses sooner (and leaves
  // room under issue 12's 200 KB). Identifiers are left as written and
  // keepNames keeps every function's and class's name, so that a stack
  // trace (`hbeat: internal error: ...`) still reads as the sources do.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  write: false,
  logLevel: 'warning',
});
const code = result.outputFiles[0].text;

if (process.argv.includes('--check')) {
  let committed = '';
  try { committed = readFileSync(out, 'utf8'); } catch { /* missing counts as stale */ }
  if (committed !== code) {
    console.error(`${out} differs from what \`npm run build\` makes from the sources: run it and commit the result`);
    process.exit(1);
  }
} else {
  writeFileSync(out, code);
  chmodSync(out, 0o755);
}

// Bundles src/main.ts into the one file that users copy: dist/hbeat.js.
// `node build.mjs --check` builds in memory and fails when the committed file
// differs, so CI catches a dist/ that was not rebuilt.
import { build, transform } from 'esbuild';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';

const out = 'dist/hbeat.js';
const { version } = JSON.parse(readFileSync('package.json', 'utf8'));

// The page of `listen --http` (src/feeds/page.html) goes in as a string, its
// inline script and style minified: 26 KB as written, 15 KB so. The tests
// import it as written (test/ts-hooks.mjs), but run this build.
const page = {
  name: 'page',
  setup(b) {
    b.onLoad({ filter: /\.html$/ }, async (args) => {
      let html = readFileSync(args.path, 'utf8');
      for (const [tag, loader] of [['script', 'js'], ['style', 'css']]) {
        const block = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
        if (!block) throw new Error(`${args.path}: no <${tag}> block`);
        const { code } = await transform(block[1], { loader, minify: true, target: 'chrome100' });
        // A function, so that no $ in the code is read as a replacement pattern.
        html = html.replace(block[0], () => `<${tag}>${code.trim()}</${tag}>`);
      }
      return { contents: html, loader: 'text' };
    });
  },
};
const result = await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  // CommonJS, so that the file runs on its own, with no package.json beside it.
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  define: { HBEAT_VERSION: JSON.stringify(version) },
  plugins: [page],
  legalComments: 'none',
  // Minified: a short-lived `pick` compiles the whole file before it reads a
  // slot, and a smaller file compiles sooner (192 KB as written, 107 KB
  // minified: about 1 ms of a pick per 40 KB here), leaving room under issue
  // 12's 200 KB. keepNames keeps every function's and class's name, which
  // V8 prints in stack traces, so `hbeat: internal error: ...` still names
  // the functions of the sources.
  minify: true,
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

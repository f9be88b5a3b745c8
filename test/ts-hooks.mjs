import { transform } from 'esbuild';
import { readFile } from 'node:fs/promises';

export async function load(url, context, next) {
  // As build.mjs's text loader: an imported .html file is its text.
  if (url.endsWith('.html')) return { format: 'module', source: `export default ${JSON.stringify(await readFile(new URL(url), 'utf8'))};`, shortCircuit: true };
  if (!url.endsWith('.ts')) return next(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const { code } = await transform(source, {
    loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: url,
    define: { HBEAT_VERSION: '"test"' },
  });
  return { format: 'module', source: code, shortCircuit: true };
}

import { transform } from 'esbuild';
import { readFile } from 'node:fs/promises';

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const { code } = await transform(source, {
    loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: url,
    define: { HBEAT_VERSION: '"test"' },
  });
  return { format: 'module', source: code, shortCircuit: true };
}

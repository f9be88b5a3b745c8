// Lets node:test run the TypeScript sources and tests directly (Node 20 has no
// type stripping): each .ts module is transformed by esbuild as it loads.
import { register } from 'node:module';
register('./ts-hooks.mjs', import.meta.url);

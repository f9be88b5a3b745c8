// Node's built-in modules that bring in many others, loaded at their first
// use: node:net and node:zlib each require the stream modules, milliseconds
// of a short-lived `pick` that uses neither (a plain import is required as
// soon as its module is initialised).

// process.getBuiltinModule (Node 20.16+) loads nothing else; before it,
// dist/hbeat.js (CommonJS) has its module's require. node:module's
// createRequire would itself load half a millisecond of modules.
const load: (id: string) => unknown = process.getBuiltinModule ?? require;

/** A function that returns the built-in module `id`, required at its first call. */
export function lazyBuiltin<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= load(id) as T);
}

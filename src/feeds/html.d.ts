// An .html file imported as a module is its text: esbuild's text loader in
// build.mjs, test/ts-hooks.mjs under the tests.
declare module '*.html' {
  const text: string;
  export default text;
}

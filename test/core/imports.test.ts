// The layout's two rules, read from the sources: no import cycle anywhere in
// src/ (type-only imports included), and nothing below the command line
// (src/cli/) imports it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'src');

/** Each module of src/ (relative path) -> the modules of src/ it imports. */
export function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).sort()) {
    const text = readFileSync(join(root, file), 'utf8');
    const targets = new Set<string>();
    // Static (`import ... from`, `export ... from`, `import type`) and dynamic imports alike.
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.[^'"]+)['"]/gm)) {
      targets.add(relative(root, resolve(root, dirname(file), m[1]!)));
    }
    graph.set(file, [...targets]);
  }
  return graph;
}

/** A cycle as a list of modules (first = last), or null. */
export function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === 'done') return null;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

test('findCycle finds a cycle and only a cycle', () => {
  assert.deepEqual(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), ['a', 'b', 'c', 'a']);
  assert.equal(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]])), null);
  assert.deepEqual(findCycle(new Map([['a', ['a']]])), ['a', 'a']);
});

test('src/ has no import cycle, type-only imports included', () => {
  const graph = importGraph(SRC);
  assert.ok(graph.size >= 20, `read ${graph.size} modules: is the scan broken?`);
  assert.ok([...graph.values()].flat().length >= 40, 'found too few imports: is the scan broken?');
  // A text asset bundled as a string (feeds/page.html) imports nothing: a leaf of the graph.
  const asset = (t: string) => !t.endsWith('.ts') && existsSync(join(SRC, t));
  for (const [file, targets] of graph) {
    for (const t of targets) assert.ok(graph.has(t) || asset(t), `${file} imports ${t}, which is not a module of src/`);
  }
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `import cycle: ${cycle?.join(' -> ')}`);
});

test('nothing below the command line imports it', () => {
  for (const [file, targets] of importGraph(SRC)) {
    if (file.startsWith('cli/') || file === 'main.ts') continue;
    for (const t of targets) assert.ok(!t.startsWith('cli/'), `${file} imports ${t}`);
  }
});

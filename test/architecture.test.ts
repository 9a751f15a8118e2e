// Keeps the dependency direction of ../shared/style.md §4 true as the code grows:
// each src/<area> may import only the areas listed for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ALLOWED: Record<string, string[]> = {
  core: [],
  config: ['core'],
  inbound: ['core', 'config', 'queue', 'routing'],
  pickup: ['core', 'config', 'queue'],
  queue: ['core', 'config'],
  outbound: ['core', 'config', 'queue', 'transports', 'history', 'm365', 'routing'],
  routing: ['core', 'config'],
  transports: ['core', 'm365', 'config'],
  m365: ['core', 'config'],
  history: ['core', 'config'],
  diagnostics: ['core'],
  admin: ['core'],
  web: ['core', 'config'],
  migrate: ['core', 'config'],
  service: ['core', 'config'],
  cli: ['*'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('src/ areas import only what the dependency direction allows', () => {
  const bad: string[] = [];
  for (const file of files('src')) {
    const area = file.split(path.sep)[1];
    const allowed = ALLOWED[area];
    assert.ok(allowed, `unknown area src/${area}: add it to the table`);
    if (allowed.includes('*')) continue;
    const text = readFileSync(file, 'utf8');
    // `import type` is free: web may name the types of services handed to it.
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
      const target = path.normalize(path.join(path.dirname(file), m[1])).split(path.sep);
      if (target[0] !== 'src') continue;
      const to = target[1];
      if (to !== area && !allowed.includes(to)) bad.push(`${file} imports src/${to} (${m[1]})`);
    }
    for (const m of text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const to = path.normalize(path.join(path.dirname(file), m[1])).split(path.sep)[1];
      if (to !== area && !allowed.includes(to)) bad.push(`${file} lazily imports src/${to}`);
    }
  }
  assert.deepEqual(bad, []);
});

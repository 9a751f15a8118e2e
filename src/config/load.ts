/**
 * Loads the YAML config file, validates it against the schema and reports every problem with
 * the file name, line and column, and what was expected:
 *
 *   /etc/smarthost.yaml:12:5: access.relay.mode: expected "only" or "all-except", got "allow"
 *
 * Returns a frozen Config. An absent file path means "embedded defaults".
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { SmarthostError } from '../core/errors.ts';
import { configSchema, type Config } from './schema.ts';
import { applyEnvOverrides } from './env.ts';

export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Loads and validates a config file (or the defaults when file is undefined). Throws SmarthostError SH_CONFIG_*. */
export function loadConfig(file?: string): Config {
  if (!file) {
    // the embedded defaults, and the SMARTHOST_* variables (config/env.ts) when the environment sets any
    const source = applyEnvOverrides({}).applied.length ? '(defaults and environment)' : '(defaults)';
    const checked = checkConfigText('{}', source);
    if (checked.errors.length) throw new SmarthostError('SH_CONFIG_INVALID', checked.errors.map((p) => formatProblem(source, p)).join('\n'));
    return finish(checked.value!, source, process.cwd());
  }
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new SmarthostError('SH_CONFIG_READ', `cannot read config file ${abs}: ${(e as Error).message}`, { file: abs });
  }
  return parseConfigText(text, abs);
}

/** Validates config text; `file` is used for messages and to resolve relative paths. */
export function parseConfigText(text: string, file: string): Config {
  const problems = checkConfigText(text, file);
  if (problems.errors.length) {
    const first = problems.errors[0];
    const lines = problems.errors.map((p) => formatProblem(file, p));
    throw new SmarthostError('SH_CONFIG_INVALID', lines.join('\n'), { file, line: first.line, column: first.column });
  }
  return finish(problems.value!, file, path.dirname(file));
}

/** Validates without throwing; returns every problem found. */
export function checkConfigText(text: string, file: string): { errors: ConfigProblem[]; value?: z.infer<typeof configSchema> } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      errors: doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col };
      }),
    };
  }
  let data = doc.toJS() ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { errors: [{ path: '', message: 'the file must be a YAML mapping of settings (key: value)', line: 1, column: 1 }] };
  }
  // SMARTHOST_* environment variables replace the keys they name (config/env.ts: the environment wins)
  try {
    data = applyEnvOverrides(data).data;
  } catch (e) {
    return { errors: [{ path: '', message: (e as Error).message }] };
  }
  const result = configSchema.safeParse(data);
  if (result.success) return { errors: [], value: result.data };
  const errors = result.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => {
        const at = locate(doc, lc, [...(issue.path as (string | number)[]), k], true);
        const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
        return { path: [...issue.path, k].join('.'), message: `${where}unknown setting "${k}"${suggest(k, issue.path)}`, ...at };
      });
    }
    const at = locate(doc, lc, issue.path as (string | number)[], false);
    return [{ path: issue.path.join('.'), message: `${issue.path.join('.') || '(top)'}: ${describeIssue(issue, data)}`, ...at }];
  });
  return { errors };
}

export function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return `${where}: ${p.message}`;
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown): string {
  const got = valueAt(data, issue.path as (string | number)[]);
  const gotText = got === undefined ? 'nothing' : JSON.stringify(got);
  if (issue.code === 'invalid_value') return `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${gotText}`;
  if (issue.code === 'invalid_type') return got === undefined ? `required setting is missing (expected ${issue.expected})` : `expected ${issue.expected}, got ${gotText}`;
  if (issue.code === 'too_small' || issue.code === 'too_big') return `${issue.message} (got ${gotText})`;
  if (issue.code === 'invalid_union') return `${issue.message}, got ${gotText}`;
  return issue.message;
}

function valueAt(data: unknown, p: (string | number)[]): unknown {
  let cur: unknown = data;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

/** Finds the YAML node for a path; for an unknown key, the key itself. */
function locate(doc: Document, lc: LineCounter, p: (string | number)[], keyNode: boolean): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let last: Node | undefined = doc.contents ?? undefined;
  for (let i = 0; i < p.length; i++) {
    const k = p[i];
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(k));
      if (!pair) break;
      if (keyNode && i === p.length - 1) {
        last = pair.key as Node;
        break;
      }
      node = pair.value;
      if (pair.value) last = pair.value as Node;
      else last = pair.key as Node;
    } else if (node && typeof node === 'object' && 'items' in node && Array.isArray((node as { items: unknown[] }).items)) {
      const item = (node as { items: unknown[] }).items[Number(k)];
      if (!item) break;
      node = item;
      last = item as Node;
    } else break;
  }
  const off = last?.range?.[0];
  if (off === undefined) return {};
  const pos = lc.linePos(off);
  return { line: pos.line, column: pos.col };
}

/** "did you mean …" for a misspelt key at the top level or in a section. */
function suggest(key: string, at: PropertyKey[]): string {
  let shape: Record<string, unknown> | undefined = configSchema.shape;
  for (const k of at) {
    if (!shape) break;
    if (typeof k === 'number') continue;
    shape = unwrapShape(shape[k as string]);
  }
  if (!shape) return '';
  const best = Object.keys(shape)
    .map((c) => [c, distance(c.toLowerCase(), key.toLowerCase())] as const)
    .sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best[0]}"?)` : '';
}

function unwrapShape(s: unknown): Record<string, unknown> | undefined {
  let cur = s as { def?: { type?: string; innerType?: unknown; in?: unknown; element?: unknown; shape?: Record<string, unknown> } } | undefined;
  for (let i = 0; i < 6 && cur?.def; i++) {
    if (cur.def.shape) return cur.def.shape;
    cur = (cur.def.innerType ?? cur.def.in ?? cur.def.element) as typeof cur;
  }
  return undefined;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function finish(value: z.infer<typeof configSchema>, source: string, baseDir: string): Config {
  const cfg: Config = {
    ...value,
    source,
    mailrootPath: path.resolve(baseDir, value.mailroot),
    hostnameResolved: value.hostname ?? hostname(),
  };
  return deepFreeze(cfg);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

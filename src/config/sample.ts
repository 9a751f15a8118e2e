/**
 * Generates the annotated sample configuration from the schema itself: every key with its default
 * and its one line of help, so the sample can never drift from what the loader accepts.
 */
import type { z } from 'zod';
import { stringify } from 'yaml';
import { configSchema } from './schema.ts';

interface Def {
  type: string;
  innerType?: ZodLike;
  in?: ZodLike;
  element?: ZodLike;
  shape?: Record<string, ZodLike>;
  defaultValue?: unknown;
  options?: ZodLike[];
  entries?: Record<string, string>;
}
interface ZodLike {
  def: Def;
  description?: string;
}

/** Returns the sample YAML text. */
export function sampleConfig(): string {
  const lines = [
    '# smarthost configuration. Every key is optional: what is shown is the default.',
    '# Check a file with: smarthost config check FILE',
    '',
  ];
  writeObject((configSchema as unknown as ZodLike).def.shape!, 0, lines);
  return `${lines.join('\n')}\n`;
}

function unwrap(s: ZodLike): { core: ZodLike; def: unknown; hasDefault: boolean; help?: string } {
  let cur = s;
  let help = s.description;
  let dflt: unknown;
  let hasDefault = false;
  for (let i = 0; i < 8; i++) {
    help ??= cur.description;
    const d = cur.def;
    if ((d.type === 'default' || d.type === 'prefault') && !hasDefault) {
      dflt = typeof d.defaultValue === 'function' ? (d.defaultValue as () => unknown)() : d.defaultValue;
      hasDefault = true;
    }
    if (d.type === 'default' || d.type === 'prefault' || d.type === 'optional') cur = d.innerType!;
    else if (d.type === 'pipe' && d.in && d.in.def.type !== 'union') cur = d.in;
    else break;
  }
  return { core: cur, def: dflt, hasDefault, help };
}

function writeObject(shape: Record<string, ZodLike>, indent: number, out: string[], given: Record<string, unknown> = {}): void {
  const pad = ' '.repeat(indent);
  for (const [key, schema] of Object.entries(shape)) {
    const { core, def, hasDefault, help } = unwrap(schema);
    const value = given[key] !== undefined ? given[key] : hasDefault ? def : undefined;
    if (help) out.push(`${pad}# ${help}`);
    if (core.def.type === 'object' && core.def.shape) {
      const sub: string[] = [];
      writeObject(core.def.shape, indent + 2, sub, (value ?? {}) as Record<string, unknown>);
      // a section whose keys are all unset must still read as a mapping, not null
      const empty = sub.every((l) => l.trimStart().startsWith('#'));
      out.push(`${pad}${key}:${empty ? ' {}' : ''}`, ...sub);
      continue;
    }
    const el = core.def.type === 'array' ? unwrap(core.def.element!).core : undefined;
    if (el?.def.type === 'object' && el.def.shape) {
      const items = Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
      if (items.length === 0) {
        out.push(`${pad}${key}: []`, `${pad}# each entry of ${key}:`);
        const sub: string[] = [];
        writeObject(el.def.shape, 0, sub);
        for (const l of sub) out.push(`${pad}#   ${l.replace(/^# /, '')}`);
        continue;
      }
      out.push(`${pad}${key}:`);
      for (const item of items) {
        const sub: string[] = [];
        writeObject(el.def.shape, 0, sub, item);
        sub.forEach((l, i) => out.push(`${pad}${i === 0 ? '  - ' : '    '}${l}`));
      }
      continue;
    }
    const enumHint = core.def.type === 'enum' && core.def.entries ? `   # one of: ${Object.values(core.def.entries).join(', ')}` : '';
    if (value === undefined) out.push(`${pad}# ${key}:${enumHint ? `${enumHint.replace(/^ +#/, '')}` : ' (not set)'}`);
    else out.push(`${pad}${key}: ${stringify(value, { collectionStyle: 'flow' }).trim()}${enumHint}`);
  }
}

export type ConfigShape = z.infer<typeof configSchema>;

/**
 * SPF macros (RFC 7208 §7): syntax checking of macro-strings and domain-specs, and expansion.
 *
 * Guarantees: `macroSyntaxError()` accepts exactly the RFC grammar (`%{` letter *DIGIT ["r"]
 * *delimiter `}`, `%%`, `%_`, `%-`); a zero DIGIT, an unknown letter or a stray `%` is an error with
 * its offset. `expandMacros()` throws `MacroError` for anything the syntax check would refuse and
 * for `c`/`r`/`t` outside explanation text; `%{p}` is resolved through the caller's `p()` only
 * when used, because it costs DNS lookups.
 */

export const MACRO_LETTERS = 'slodiphcrtv';
const DELIMITERS = '.-+,/_=';

export class MacroError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'MacroError';
    this.offset = offset;
  }
}

export interface MacroToken {
  kind: 'literal' | 'macro' | 'escape';
  text: string;
  offset: number;
  letter?: string;
  digits?: number;
  reverse?: boolean;
  delimiters?: string;
  urlEscape?: boolean;
}

/** Splits a macro-string into literals, escapes and macros; throws MacroError on bad syntax. */
export function tokenizeMacros(text: string): MacroToken[] {
  const out: MacroToken[] = [];
  let i = 0;
  while (i < text.length) {
    const pct = text.indexOf('%', i);
    if (pct < 0) {
      out.push({ kind: 'literal', text: text.slice(i), offset: i });
      break;
    }
    if (pct > i) out.push({ kind: 'literal', text: text.slice(i, pct), offset: i });
    const next = text[pct + 1];
    if (next === '%' || next === '_' || next === '-') {
      out.push({ kind: 'escape', text: text.slice(pct, pct + 2), offset: pct });
      i = pct + 2;
      continue;
    }
    if (next !== '{') throw new MacroError(next === undefined ? 'a "%" at the end must be written "%%"' : `"%${next}" is not a macro: write "%{…}", "%%", "%_" or "%-"`, pct);
    const close = text.indexOf('}', pct);
    if (close < 0) throw new MacroError('a macro "%{" is not closed with "}"', pct);
    const body = text.slice(pct + 2, close);
    const m = /^([a-zA-Z])(\d*)([rR]?)(.*)$/.exec(body);
    if (!m) throw new MacroError(`"%{${body}}" has no macro letter`, pct);
    const [, letter, digits, reverse, delimiters] = m;
    if (!MACRO_LETTERS.includes(letter.toLowerCase())) throw new MacroError(`"%{${body}}": "${letter}" is not a macro letter (one of ${MACRO_LETTERS.split('').join(', ')})`, pct);
    for (const ch of delimiters) {
      if (!DELIMITERS.includes(ch)) throw new MacroError(`"%{${body}}": "${ch}" is not a delimiter (one of ${DELIMITERS})`, pct);
    }
    if (digits !== '' && Number(digits) === 0) throw new MacroError(`"%{${body}}": the number of parts must not be zero`, pct);
    out.push({
      kind: 'macro', text: text.slice(pct, close + 1), offset: pct, letter: letter.toLowerCase(),
      digits: digits === '' ? undefined : Number(digits), reverse: reverse !== '', delimiters, urlEscape: letter !== letter.toLowerCase(),
    });
    i = close + 1;
  }
  return out;
}

/** The syntax error of a macro-string (with its offset), or undefined. `exp` allows c, r, t. */
export function macroSyntaxError(text: string, exp = false): MacroError | undefined {
  try {
    const tokens = tokenizeMacros(text);
    if (!exp) {
      const bad = tokens.find((t) => t.kind === 'macro' && 'crt'.includes(t.letter!));
      if (bad) return new MacroError(`${bad.text}: the c, r and t macros are allowed only in explanation text`, bad.offset);
    }
    return undefined;
  } catch (err) {
    return err as MacroError;
  }
}

const TOPLABEL = /\.(?:[0-9a-z]*[a-z][0-9a-z]*|[0-9a-z]+-[0-9a-z-]*[0-9a-z])\.?$/i;

/** The problem with a domain-spec (RFC 7208 §7.1: it must end in a macro or "." toplabel), or undefined. */
export function domainSpecError(spec: string): MacroError | undefined {
  const syntax = macroSyntaxError(spec);
  if (syntax) return syntax;
  const tokens = tokenizeMacros(spec);
  const last = tokens[tokens.length - 1];
  if (!last) return undefined; // empty: the caller says what is missing
  if (last.kind !== 'literal') return undefined;
  // the text after the last macro must end in "." plus a top label that is not all digits
  const tail = last.text;
  if (!TOPLABEL.test(tail)) {
    return new MacroError(`"${spec}" is not a fully qualified domain name (it must end in a top-level label such as ".com", not digits, a port or a slash)`, last.offset);
  }
  return undefined;
}

export interface MacroValues {
  s: string; l: string; o: string; d: string; i: string; h: string; v: string;
  c: string; r: string; t: string;
  /** Resolves %{p} (validated client name) on first use. */
  p: () => Promise<string>;
}

/** RFC 3986 percent-encoding of everything but unreserved characters. */
function urlEscape(text: string): string {
  return Array.from(Buffer.from(text, 'utf8'))
    .map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
}

/** One macro's value after splitting, reversing, taking the right-hand parts and re-joining with ".". */
function transform(value: string, token: MacroToken): string {
  if (token.digits === undefined && !token.reverse && !token.delimiters) return value;
  const delimiters = token.delimiters || '.';
  let parts: string[] = [];
  let current = '';
  for (const ch of value) {
    if (delimiters.includes(ch)) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  if (token.reverse) parts.reverse();
  if (token.digits !== undefined && token.digits < parts.length) parts = parts.slice(parts.length - token.digits);
  return parts.join('.');
}

/**
 * Expands a macro-string. As a domain (exp=false): c/r/t refused, one trailing dot removed, and a
 * result over 253 octets loses labels from the left until it fits (RFC 7208 §7.3).
 */
export async function expandMacros(text: string, values: MacroValues, exp = false): Promise<string> {
  const tokens = tokenizeMacros(text);
  let out = '';
  for (const token of tokens) {
    if (token.kind === 'literal') out += token.text;
    else if (token.kind === 'escape') out += token.text === '%%' ? '%' : token.text === '%_' ? ' ' : '%20';
    else {
      const letter = token.letter!;
      if (!exp && 'crt'.includes(letter)) throw new MacroError(`${token.text}: the c, r and t macros are allowed only in explanation text`, token.offset);
      const raw = letter === 'p' ? await values.p() : values[letter as Exclude<keyof MacroValues, 'p'>];
      const value = transform(raw, token);
      out += token.urlEscape ? urlEscape(value) : value;
    }
  }
  if (!exp) {
    if (out.endsWith('.')) out = out.slice(0, -1);
    while (out.length > 253 && out.includes('.')) out = out.slice(out.indexOf('.') + 1);
  }
  return out;
}

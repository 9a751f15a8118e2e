/**
 * Authentication results as receivers record them:
 *  - Authentication-Results (RFC 8601) and ARC-Authentication-Results (RFC 8617, with "i=N;"):
 *    authserv-id, then "method=result" entries with reason= and ptype.property=value pairs and
 *    the receiver's comments (e.g. Microsoft's "(sender IP is 203.0.113.5)");
 *  - Received-SPF (RFC 7208 §9.1): result, comment and key=value pairs (client-ip, envelope-from…);
 *  - ARC-Seal: instance and chain validation (cv=none|pass|fail).
 * Plus plain-words meanings of results and of Microsoft's compauth reason codes. Never throws.
 */
import { stripComments } from './parse.ts';

export interface AuthResult {
  method: string;
  result: string;
  reason?: string;
  /** Every other key=value, e.g. "smtp.mailfrom", "header.d", "action". */
  props: Record<string, string>;
  comment?: string;
}

export interface AuthenticationResults {
  authservId: string;
  /** ARC instance, for ARC-Authentication-Results. */
  instance?: number;
  results: AuthResult[];
}

export interface ReceivedSpf {
  result: string;
  comment?: string;
  params: Record<string, string>;
}

export interface ArcSeal {
  instance?: number;
  cv?: string;
  domain?: string;
}

/** Splits on a separator outside quotes and comments. */
function splitTopLevel(value: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\') { current += ch + (value[i + 1] ?? ''); i++; continue; }
    if (ch === '"' && depth === 0) quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')' && depth > 0) depth--;
    if (ch === sep && depth === 0 && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** key=value pairs of a resinfo (spaces around "=" allowed, quoted values unquoted). */
function pairs(text: string): [string, string][] {
  const out: [string, string][] = [];
  const re = /([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]*)/g;
  for (const m of text.matchAll(re)) out.push([m[1], m[2].startsWith('"') ? m[2].slice(1, -1).replace(/\\(.)/g, '$1') : m[2]]);
  return out;
}

/** Parses an Authentication-Results or ARC-Authentication-Results value. */
export function parseAuthenticationResults(value: string, arc = false): AuthenticationResults {
  const parts = splitTopLevel(value, ';');
  let instance: number | undefined;
  if (arc && /^i\s*=\s*\d+$/.test(parts[0] ?? '')) instance = Number(parts.shift()!.split('=')[1]);
  // Microsoft 365 omits the authserv-id and starts with "spf=…": then there is no id to take.
  const startsWithResult = /^[A-Za-z0-9_.-]+(\/\d+)?\s*=/.test(stripComments(parts[0] ?? '').text);
  const head = startsWithResult ? '' : stripComments(parts.shift() ?? '').text;
  const authservId = head.split(/\s+/)[0] ?? '';
  const results: AuthResult[] = [];
  for (const part of parts) {
    const { text, comments } = stripComments(part);
    if (/^none$/i.test(text)) continue;
    const kv = pairs(text);
    if (kv.length === 0) continue;
    const [[methodRaw, result], ...rest] = kv;
    const r: AuthResult = { method: methodRaw.toLowerCase().replace(/\/\d+$/, ''), result: result.toLowerCase(), props: {} };
    for (const [k, v] of rest) {
      if (k.toLowerCase() === 'reason') r.reason = v;
      else r.props[k.toLowerCase()] = v;
    }
    if (comments.length) r.comment = comments.join('; ');
    results.push(r);
  }
  return { authservId, instance, results };
}

/** Parses a Received-SPF value: "Pass (comment) client-ip=…; envelope-from=…;". */
export function parseReceivedSpf(value: string): ReceivedSpf {
  const m = /^\s*([A-Za-z]+)/.exec(value);
  const result = (m?.[1] ?? '').toLowerCase();
  const afterResult = value.slice(m ? m[0].length : 0);
  const { text, comments } = stripComments(afterResult.trimStart().startsWith('(') ? afterResult : afterResult);
  const params: Record<string, string> = {};
  for (const [k, v] of pairs(text)) params[k.toLowerCase()] = v;
  const comment = afterResult.trimStart().startsWith('(') ? comments[0] : undefined;
  return { result, comment, params };
}

/** Parses an ARC-Seal value (tag=value list). */
export function parseArcSeal(value: string): ArcSeal {
  const tags: Record<string, string> = {};
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).replace(/\s+/g, '');
  }
  return { instance: tags.i ? Number(tags.i) : undefined, cv: tags.cv?.toLowerCase(), domain: tags.d };
}

const RESULT_WORDS: Record<string, string> = {
  pass: 'passed',
  fail: 'failed',
  softfail: 'soft-failed (the domain says "probably not authorised" with ~all)',
  neutral: 'neutral (the domain makes no statement, ?all)',
  none: 'not checked or no record/signature',
  temperror: 'could not be checked (temporary DNS error)',
  permerror: 'broken record (permanent error)',
  policy: 'failed local policy',
  bestguesspass: 'passed a best-guess check (no SPF record)',
  softpass: 'soft-passed',
};

/** "spf=softfail" → words. */
export function describeResult(method: string, result: string): string {
  return `${method.toUpperCase()} ${RESULT_WORDS[result] ?? result}`;
}

/**
 * Microsoft's compauth reason codes ("composite authentication", from the anti-spam message
 * headers documentation): the hundreds digit gives the band.
 */
export function describeCompauthReason(reason: string | undefined): string | undefined {
  if (!reason || !/^\d{3}$/.test(reason)) return undefined;
  const exact: Record<string, string> = {
    '000': 'the From domain failed DMARC and its policy is quarantine or reject (explicit fail)',
    '001': 'implicit authentication failed: the From domain publishes no authentication records, or only weak ones (SPF ~all/?all, DMARC p=none), and the message did not authenticate',
    '002': 'the organisation has a policy that explicitly forbids this sender/domain pair (spoofing not allowed)',
    '010': 'the From domain failed DMARC with quarantine/reject and is one of the recipient organisation\'s own domains (self-to-self spoofing)',
  };
  if (exact[reason]) return exact[reason];
  const band: Record<string, string> = {
    '1': 'passed composite authentication',
    '2': 'soft pass: passed implicit authentication with some doubts',
    '3': 'not checked for composite authentication',
    '4': 'composite authentication was bypassed',
    '6': 'implicit authentication failed and the From domain is one of the recipient organisation\'s own domains (self-to-self spoofing)',
    '7': 'passed composite authentication',
    '9': 'composite authentication was bypassed',
  };
  return band[reason[0]];
}

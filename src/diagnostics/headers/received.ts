/**
 * Received header parsing (RFC 5321 §4.4): `from`, `by`, `via`, `with`, `id`, `for`, the date
 * after the last ";", the connecting IP from the from-clause's comment, and TLS evidence:
 *
 *  - RFC 3848 protocol names: ESMTPS / ESMTPSA / LMTPS / UTF8SMTPS (and Google's SMTPS) mean TLS;
 *    ESMTP / SMTP / ESMTPA / LMTP without the S mean none;
 *  - Postfix: "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) …)";
 *  - Exchange/Microsoft 365: "with Microsoft SMTP Server (version=TLS1_2, cipher=…)"; the same
 *    without "version=" is a plain SMTP hop; "with HTTPS" / "with mapi" are Microsoft-internal;
 *  - Gmail: "(version=TLS1_3 cipher=… bits=256/256)" and "(Google Transport Security)".
 * Malformed lines never throw: fields that cannot be found are left undefined.
 */
import { isIP } from 'node:net';
import { parseMailDate, stripComments } from './parse.ts';

export type TlsState = 'tls' | 'none' | 'internal' | 'unknown';

export interface ReceivedHop {
  raw: string;
  from?: string;
  /** The from-clause's comment, e.g. "mail.example.org [198.51.100.7]". */
  fromComment?: string;
  fromIp?: string;
  by?: string;
  with?: string;
  id?: string;
  for?: string;
  via?: string;
  dateText?: string;
  /** Epoch ms, when the date could be read. */
  time?: number;
  tls: TlsState;
  tlsVersion?: string;
  tlsCipher?: string;
  /** Words explaining how the TLS state was decided. */
  tlsEvidence: string;
}

const CLAUSES = ['from', 'by', 'via', 'with', 'id', 'for'] as const;
type Clause = (typeof CLAUSES)[number];

/** Parses one Received field value. */
export function parseReceived(value: string): ReceivedHop {
  const semicolon = lastTopLevelSemicolon(value);
  const body = semicolon >= 0 ? value.slice(0, semicolon) : value;
  const dateText = semicolon >= 0 ? value.slice(semicolon + 1).trim() : undefined;
  const hop: ReceivedHop = { raw: value, tls: 'unknown', tlsEvidence: 'the hop does not say' };
  if (dateText) {
    hop.dateText = dateText;
    hop.time = parseMailDate(dateText);
  }
  const clauses = splitClauses(body);
  for (const c of CLAUSES) {
    const found = clauses.get(c);
    if (!found) continue;
    if (c === 'from') {
      hop.from = found.word;
      hop.fromComment = found.comments.join(' ') || undefined;
      hop.fromIp = findIp(found.comments.join(' ')) ?? findIp(found.word);
    } else if (c === 'for') {
      hop.for = found.word.replace(/^<|>$/g, '');
    } else {
      hop[c] = found.word || undefined;
    }
  }
  decideTls(hop, body, clauses.get('with'));
  return hop;
}

interface ClauseValue { word: string; comments: string[] }

/** Splits "from X (c) by Y (c) with Z …" into clauses; each keeps the comments that follow it. */
function splitClauses(body: string): Map<Clause, ClauseValue> {
  const out = new Map<Clause, ClauseValue>();
  const tokens = tokenize(body);
  let current: ClauseValue | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const keyword = t.kind === 'word' ? (t.text.toLowerCase() as Clause) : undefined;
    if (keyword && CLAUSES.includes(keyword) && !out.has(keyword)) {
      const next = tokens[i + 1];
      current = { word: next && next.kind === 'word' ? next.text : '', comments: [] };
      // "with Microsoft SMTP Server": keep the multi-word protocol name together
      if (keyword === 'with') {
        let j = i + 2;
        while (tokens[j]?.kind === 'word' && !CLAUSES.includes(tokens[j].text.toLowerCase() as Clause)) current.word += ` ${tokens[j++].text}`;
        i = j - 1;
      } else if (next && next.kind === 'word') i++;
      out.set(keyword, current);
      continue;
    }
    if (t.kind === 'comment' && current) current.comments.push(t.text);
  }
  return out;
}

function tokenize(body: string): { kind: 'word' | 'comment'; text: string }[] {
  const tokens: { kind: 'word' | 'comment'; text: string }[] = [];
  let i = 0;
  while (i < body.length) {
    const ch = body[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '(') {
      let depth = 0;
      let j = i;
      for (; j < body.length; j++) {
        if (body[j] === '\\') { j++; continue; }
        if (body[j] === '(') depth++;
        else if (body[j] === ')' && --depth === 0) break;
      }
      tokens.push({ kind: 'comment', text: body.slice(i + 1, j).trim() });
      i = j + 1;
    } else {
      let j = i;
      while (j < body.length && !/[\s(]/.test(body[j])) j++;
      tokens.push({ kind: 'word', text: body.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

function lastTopLevelSemicolon(value: string): number {
  let depth = 0;
  let last = -1;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '(') depth++;
    else if (value[i] === ')' && depth > 0) depth--;
    else if (value[i] === ';' && depth === 0) last = i;
  }
  return last;
}

/** The first IPv4 or IPv6 literal in text ("[198.51.100.7]", "(2603:10a6:208:12::34)", "[IPv6:…]", "[fe80::1%6]"). */
function findIp(text: string): string | undefined {
  for (const raw of text.split(/[\s[\]()<>,;]+/)) {
    const token = raw.replace(/^IPv6:/i, '').replace(/%[\w.]+$/, '').replace(/\.$/, '');
    if (token && isIP(token)) return token;
  }
  return undefined;
}

function decideTls(hop: ReceivedHop, body: string, withClause: ClauseValue | undefined): void {
  const { comments } = stripComments(body);
  const all = comments.join(' ');
  const postfix = /using (TLSv?[\d.]+|SSLv\d)(?: with cipher ([A-Z0-9_-]+))?/i.exec(all);
  const ms = /version=(TLS[\d_.v]+|SSL\w*)[,\s]+cipher=([A-Z0-9_-]+)/i.exec(all);
  const proto = (withClause?.word ?? '').toUpperCase();
  if (postfix || ms) {
    hop.tls = 'tls';
    hop.tlsVersion = (postfix?.[1] ?? ms![1]).replace(/^TLSv?/i, 'TLS ').replace('_', '.');
    hop.tlsCipher = postfix?.[2] ?? ms?.[2];
    hop.tlsEvidence = postfix ? 'Postfix "using TLS…" comment' : '"version=…, cipher=…" in the with-clause';
    return;
  }
  if (/^(ESMTPS|ESMTPSA|LMTPS|LMTPSA|UTF8SMTPS|UTF8SMTPSA|UTF8LMTPS|SMTPS)$/.test(proto) || /Google Transport Security/i.test(all)) {
    hop.tls = 'tls';
    hop.tlsEvidence = `protocol ${proto || 'comment'} (RFC 3848: TLS was used)`;
    return;
  }
  if (/^(HTTPS|MAPI)/.test(proto)) {
    hop.tls = 'internal';
    hop.tlsEvidence = `Microsoft-internal transfer (${withClause!.word})`;
    return;
  }
  if (/^MICROSOFT SMTP SERVER/.test(proto)) {
    hop.tls = 'none';
    hop.tlsEvidence = 'Microsoft SMTP Server with no version=/cipher=: sent without TLS';
    return;
  }
  if (/^(ESMTP|SMTP|ESMTPA|LMTP|LMTPA|UTF8SMTP|UTF8SMTPA)$/.test(proto)) {
    hop.tls = 'none';
    hop.tlsEvidence = `protocol ${proto} (RFC 3848: no TLS)`;
    return;
  }
  if (!withClause) hop.tlsEvidence = 'no "with" clause (a local hop, e.g. Postfix pickup)';
}

/**
 * The Message Header Analyzer: turns a message (or pasted headers) into
 *  - a summary (Subject, From, To, Date, Message-ID),
 *  - the Received hops oldest first, with the delay since the previous hop, the total, and TLS per hop,
 *  - SPF / DKIM / DMARC / ARC / compauth results (Authentication-Results, ARC-*, Received-SPF),
 *  - Microsoft's anti-spam fields decoded (X-Forefront-Antispam-Report, X-Microsoft-Antispam,
 *    X-MS-Exchange-Organization-SCL, X-Microsoft-Antispam-Mailbox-Delivery) and SpamAssassin's,
 *  - findings, and a one-line verdict of whether and why the message was junked.
 * Guarantees: pure (no I/O, no DNS), never throws on malformed input, and the result is plain
 * JSON (the CLI's --json and the console show the same object).
 */
import { decodeEncodedWords, parseHeaderBlock, parseMailDate, type HeaderField } from './parse.ts';
import { parseReceived, type ReceivedHop } from './received.ts';
import { describeCompauthReason, describeResult, parseArcSeal, parseAuthenticationResults, parseReceivedSpf, type AuthenticationResults, type ReceivedSpf } from './auth-results.ts';
import { decodeExchangeFields, decodeForefront, decodeMailboxDelivery, decodeMicrosoftAntispam, describeScl, type DecodedField } from './antispam.ts';

export interface Hop extends ReceivedHop {
  /** 1 = the oldest hop. */
  number: number;
  /** Milliseconds since the previous hop (negative means the clocks disagree). */
  delayMs?: number;
  /** True for hops inside Microsoft 365 (*.outlook.com, *.microsoft.com, *.office365.com). */
  microsoft: boolean;
}

export interface Finding {
  severity: 'error' | 'warning' | 'info';
  message: string;
}

export interface AuthSummary {
  spf?: string;
  dkim?: string;
  dmarc?: string;
  arc?: string;
  compauth?: string;
  compauthReason?: string;
  compauthMeaning?: string;
}

export interface HeaderAnalysis {
  summary: { subject?: string; from?: string; to?: string; date?: string; messageId?: string };
  hops: Hop[];
  /** Last hop time minus first hop time. */
  totalDelayMs?: number;
  /** Last hop time minus the Date header (how long from "sent" to delivered). */
  sinceDateMs?: number;
  authenticationResults: AuthenticationResults[];
  arcAuthenticationResults: AuthenticationResults[];
  arcSeals: { instance?: number; cv?: string; domain?: string }[];
  receivedSpf: ReceivedSpf[];
  auth: AuthSummary;
  antispam: { forefront: DecodedField[]; microsoft: DecodedField[]; mailboxDelivery: DecodedField[]; exchange: DecodedField[]; scl?: number; bcl?: number; spamAssassin?: { flagged: boolean; score?: number; required?: number; tests?: string[] } };
  findings: Finding[];
  verdict: { junked: boolean; line: string };
}

const MICROSOFT_HOST = /(\.outlook\.com|\.office365\.com|\.microsoft\.com|\.exchangelabs\.com|\.outlook\.office\.com)$/i;

function values(fields: HeaderField[], key: string): string[] {
  return fields.filter((f) => f.key === key).map((f) => f.value);
}

/** Analyzes a message or a header block. */
export function analyzeHeaders(text: string): HeaderAnalysis {
  const fields = parseHeaderBlock(text);
  const first = (key: string): string | undefined => values(fields, key)[0];
  const summary = {
    subject: first('subject') && decodeEncodedWords(first('subject')!),
    from: first('from') && decodeEncodedWords(first('from')!),
    to: first('to') && decodeEncodedWords(first('to')!),
    date: first('date'),
    messageId: first('message-id'),
  };
  const hops = buildHops(values(fields, 'received'));
  const timed = hops.filter((h) => h.time !== undefined);
  const totalDelayMs = timed.length >= 2 ? timed[timed.length - 1].time! - timed[0].time! : undefined;
  const dateMs = summary.date ? parseMailDate(summary.date) : undefined;
  const sinceDateMs = dateMs !== undefined && timed.length > 0 ? timed[timed.length - 1].time! - dateMs : undefined;

  const authenticationResults = values(fields, 'authentication-results').map((v) => parseAuthenticationResults(v));
  const arcAuthenticationResults = values(fields, 'arc-authentication-results').map((v) => parseAuthenticationResults(v, true));
  const arcSeals = values(fields, 'arc-seal').map(parseArcSeal);
  const receivedSpf = values(fields, 'received-spf').map(parseReceivedSpf);
  const auth = summarizeAuth(authenticationResults, arcSeals, receivedSpf);

  const forefront = values(fields, 'x-forefront-antispam-report').flatMap(decodeForefront);
  const microsoft = values(fields, 'x-microsoft-antispam').flatMap(decodeMicrosoftAntispam);
  const mailboxDelivery = values(fields, 'x-microsoft-antispam-mailbox-delivery').flatMap(decodeMailboxDelivery);
  const sclText = first('x-ms-exchange-organization-scl') ?? forefront.find((f) => f.key === 'SCL')?.value;
  const scl = sclText !== undefined && /^-?\d+$/.test(sclText.trim()) ? Number(sclText.trim()) : undefined;
  const bclText = microsoft.find((f) => f.key === 'BCL')?.value;
  const bcl = bclText !== undefined && /^\d$/.test(bclText) ? Number(bclText) : undefined;
  const spamAssassin = readSpamAssassin(fields);
  const exchange = decodeExchangeFields(fields);
  const antispam = { forefront, microsoft, mailboxDelivery, exchange, scl, bcl, spamAssassin };

  const findings = collectFindings(hops, auth, antispam);
  const authAs = exchange.find((f) => f.key.toLowerCase() === 'x-ms-exchange-organization-authas')?.value.trim().toLowerCase();
  const fromDomain = /@([^>\s]+)>?\s*$/.exec(summary.from ?? '')?.[1]?.toLowerCase();
  const toDomain = /@([^>\s,]+)/.exec(summary.to ?? '')?.[1]?.toLowerCase();
  if (authAs === 'anonymous' && fromDomain && fromDomain === toDomain) {
    findings.push({ severity: 'warning', message: `Microsoft 365 received this ${fromDomain} → ${toDomain} message anonymously (AuthAs: Anonymous): mail from your own domain that does not authenticate is treated as spoofing. Send it with SMTP AUTH, through an inbound connector for the relay's address, or make SPF/DKIM pass` });
  }
  const verdict = decideVerdict(auth, antispam);
  return { summary, hops, totalDelayMs, sinceDateMs, authenticationResults, arcAuthenticationResults, arcSeals, receivedSpf, auth, antispam, findings, verdict };
}

/** Received fields are prepended by each server, so the last one is the oldest hop. */
function buildHops(received: string[]): Hop[] {
  const hops: Hop[] = [];
  let previous: number | undefined;
  [...received].reverse().forEach((value, i) => {
    const parsed = parseReceived(value);
    const hop: Hop = { ...parsed, number: i + 1, microsoft: MICROSOFT_HOST.test(parsed.by ?? '') };
    if (parsed.time !== undefined && previous !== undefined) hop.delayMs = parsed.time - previous;
    if (parsed.time !== undefined) previous = parsed.time;
    hops.push(hop);
  });
  return hops;
}

function summarizeAuth(ar: AuthenticationResults[], seals: { cv?: string; instance?: number }[], rspf: ReceivedSpf[]): AuthSummary {
  // The topmost Authentication-Results is the final receiver's; earlier ones are from other hops.
  const pick = (method: string): { result: string; reason?: string } | undefined => {
    for (const block of ar) {
      const r = block.results.find((x) => x.method === method);
      if (r) return r;
    }
    return undefined;
  };
  const out: AuthSummary = {};
  out.spf = pick('spf')?.result ?? rspf[0]?.result;
  out.dkim = pick('dkim')?.result;
  out.dmarc = pick('dmarc')?.result;
  const arc = pick('arc')?.result;
  const lastSeal = [...seals].sort((a, b) => (b.instance ?? 0) - (a.instance ?? 0))[0];
  out.arc = arc ?? (lastSeal ? `cv=${lastSeal.cv ?? '?'} (i=${lastSeal.instance ?? '?'})` : undefined);
  const comp = pick('compauth');
  if (comp) {
    out.compauth = comp.result;
    out.compauthReason = comp.reason;
    out.compauthMeaning = describeCompauthReason(comp.reason);
  }
  return out;
}

function readSpamAssassin(fields: HeaderField[]): HeaderAnalysis['antispam']['spamAssassin'] {
  const flag = values(fields, 'x-spam-flag')[0];
  const status = values(fields, 'x-spam-status')[0];
  if (flag === undefined && status === undefined) return undefined;
  const flagged = /^\s*yes/i.test(flag ?? status ?? '');
  const score = /score=(-?[\d.]+)/.exec(status ?? '')?.[1];
  const required = /required=(-?[\d.]+)/.exec(status ?? '')?.[1];
  // SpamAssassin writes "tests=A,B,C"; amavis writes "tests=[A=3.5, B=0.2]" (with scores).
  const testsText = /tests=\[([^\]]*)\]/.exec(status ?? '')?.[1] ?? /tests=(\S+)/.exec(status ?? '')?.[1];
  const tests = testsText?.split(/\s*,\s*/).map((t) => t.trim()).filter(Boolean);
  return { flagged, score: score ? Number(score) : undefined, required: required ? Number(required) : undefined, tests };
}

function field(list: DecodedField[], key: string): string | undefined {
  return list.find((f) => f.key.toLowerCase() === key.toLowerCase())?.value;
}

function collectFindings(hops: Hop[], auth: AuthSummary, antispam: HeaderAnalysis['antispam']): Finding[] {
  const out: Finding[] = [];
  for (const h of hops) {
    const previous = hops[h.number - 2];
    if (h.delayMs !== undefined && h.delayMs < 0) out.push({ severity: 'warning', message: `hop ${h.number} (${h.by ?? '?'}) is timestamped ${formatDuration(-h.delayMs)} before the previous hop: the two servers' clocks disagree` });
    // The time between two hops was spent at the previous server (its queue, retries) or in the next one's greylisting.
    if (h.delayMs !== undefined && h.delayMs >= 60_000) out.push({ severity: 'info', message: `hop ${h.number} (${h.by ?? '?'}) came ${formatDuration(h.delayMs)} after hop ${h.number - 1}: the message waited at ${previous?.by ?? 'the previous server'} (its queue or retries) or was greylisted` });
    if (h.tls === 'none' && h.from && !isLoopback(h.from) && !isLoopback(h.fromIp ?? '')) {
      // A printer on the LAN speaking plain SMTP to the relay is expected; on the Internet it is not.
      const lan = isPrivate(h.fromIp ?? '');
      out.push({ severity: lan ? 'info' : 'warning', message: `hop ${h.number}: ${h.from} → ${h.by ?? '?'} was sent without TLS${lan ? ' inside the local network' : ''} (${h.tlsEvidence})` });
    }
    if (h.time === undefined && h.dateText !== undefined) out.push({ severity: 'warning', message: `hop ${h.number}: date "${h.dateText}" could not be read` });
  }
  if (auth.spf && auth.spf !== 'pass') out.push({ severity: auth.spf === 'fail' || auth.spf === 'permerror' ? 'error' : 'warning', message: describeResult('spf', auth.spf) });
  if (auth.dkim && auth.dkim !== 'pass') out.push({ severity: auth.dkim === 'fail' ? 'error' : 'warning', message: describeResult('dkim', auth.dkim) });
  if (auth.dmarc && auth.dmarc !== 'pass' && auth.dmarc !== 'bestguesspass') out.push({ severity: auth.dmarc === 'fail' ? 'error' : 'warning', message: describeResult('dmarc', auth.dmarc) });
  if (auth.compauth && auth.compauth !== 'pass') out.push({ severity: auth.compauth === 'fail' ? 'error' : 'warning', message: `compauth=${auth.compauth}${auth.compauthReason ? ` reason=${auth.compauthReason}` : ''}${auth.compauthMeaning ? `: ${auth.compauthMeaning}` : ''}` });
  const ptr = antispam.forefront.find((f) => f.key === 'PTR');
  if (ptr && ptr.value === '') out.push({ severity: 'warning', message: `the connecting IP ${field(antispam.forefront, 'CIP') ?? ''} has no reverse DNS name (PTR): give the relay's public address one` });
  if (antispam.bcl !== undefined && antispam.bcl >= 6) out.push({ severity: 'warning', message: `bulk complaint level ${antispam.bcl}: treated as bulk mail by most policies` });
  if (antispam.forefront.length === 0 && hops.some((h) => h.microsoft)) out.push({ severity: 'info', message: 'X-Forefront-Antispam-Report is missing although Microsoft 365 handled the message' });
  return out;
}

/** The one-line verdict: junked or not, and the main reason why. */
function decideVerdict(auth: AuthSummary, antispam: HeaderAnalysis['antispam']): { junked: boolean; line: string } {
  const sfv = field(antispam.forefront, 'SFV')?.toUpperCase();
  const cat = field(antispam.forefront, 'CAT')?.toUpperCase();
  const dest = field(antispam.mailboxDelivery, 'dest')?.toUpperCase();
  const cip = field(antispam.forefront, 'CIP');
  const sa = antispam.spamAssassin;
  const scl = antispam.scl;
  const junked = (scl !== undefined && scl >= 5) || ['SPM', 'SKS', 'SKB', 'BLK'].includes(sfv ?? '') || dest === 'J' || ['SPM', 'HSPM', 'PHSH', 'HPHSH', 'HPHISH', 'SPOOF', 'BULK', 'MALW', 'DIMP', 'UIMP', 'GIMP', 'BIMP'].includes(cat ?? '') || !!sa?.flagged;

  const authFacts: string[] = [];
  if (auth.spf && auth.spf !== 'pass') authFacts.push(`SPF ${auth.spf}${cip ? ` for ${cip}` : ''}`);
  if (auth.dkim && auth.dkim !== 'pass') authFacts.push(auth.dkim === 'none' ? 'no DKIM signature' : `DKIM ${auth.dkim}`);
  if (auth.dmarc && auth.dmarc !== 'pass') authFacts.push(`DMARC ${auth.dmarc}`);

  if (!junked) {
    const parts = [scl !== undefined ? `SCL ${scl}` : undefined, sfv ? `SFV:${sfv}` : undefined, sa ? `SpamAssassin score ${sa.score ?? '?'}` : undefined,
      auth.spf ? `SPF ${auth.spf}` : undefined, auth.dkim ? `DKIM ${auth.dkim}` : undefined, auth.dmarc ? `DMARC ${auth.dmarc}` : undefined].filter(Boolean);
    return { junked: false, line: `Not junked${parts.length ? `: ${parts.join(', ')}` : ' (no spam verdict headers found)'}` };
  }
  let reason: string;
  if (sfv === 'BLK') reason = 'the sender is on the recipient\'s Blocked Senders list (SFV:BLK)';
  else if (sfv === 'SKS') reason = 'a mail flow rule marked it as spam before filtering (SFV:SKS)';
  else if (sfv === 'SKB') reason = 'the sender is on the anti-spam policy\'s block list (SFV:SKB)';
  else if (cat === 'SPOOF') reason = `Microsoft 365 treated it as spoofing (CAT:SPOOF): composite authentication failed${auth.compauthReason ? ` (compauth=${auth.compauth} reason=${auth.compauthReason}${auth.compauthMeaning ? `: ${auth.compauthMeaning}` : ''})` : ''}`;
  else if (cat === 'PHSH' || cat === 'HPHSH' || cat === 'HPHISH') reason = `Microsoft 365 classified it as ${cat === 'PHSH' ? 'phishing' : 'high confidence phishing'} (CAT:${cat})`;
  else if (cat === 'BULK' || field(antispam.forefront, 'SRV')?.toUpperCase() === 'BULK') reason = `it is bulk mail (BCL ${antispam.bcl ?? '?'}) at or above the policy's bulk threshold`;
  else if (cat && CAT_WORDS[cat]) reason = `Microsoft 365 classified it as ${CAT_WORDS[cat]} (CAT:${cat})`;
  else if (sa?.flagged) reason = `SpamAssassin scored it ${sa.score ?? '?'} (threshold ${sa.required ?? '?'})${sa.tests?.length ? `, rules: ${sa.tests.slice(0, 6).join(', ')}` : ''}`;
  else if (scl !== undefined) reason = `spam filtering scored it SCL ${scl} (${describeScl(scl).split(':')[0]})`;
  else reason = 'the mailbox put it in Junk Email';
  const extra = [...authFacts];
  if (scl !== undefined && !reason.includes('SCL')) extra.push(`SCL ${scl}`);
  if (dest === 'J') extra.push('delivered to Junk Email (dest:J)');
  return { junked: true, line: `Junked: ${reason}${extra.length ? `; ${extra.join(', ')}` : ''}` };
}

const CAT_WORDS: Record<string, string> = { SPM: 'spam', HSPM: 'high confidence spam', MALW: 'malware', DIMP: 'domain impersonation', UIMP: 'user impersonation', GIMP: 'mailbox intelligence impersonation', BIMP: 'brand impersonation' };

function isLoopback(hostOrIp: string): boolean {
  return /^(localhost|127\.|\[127\.|::1$|\[::1\])/i.test(hostOrIp);
}

function isPrivate(ip: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|f[cd][0-9a-f]{2}:|fe80:)/i.test(ip);
}

/** 0 ms → "0 s", 152000 → "2 min 32 s", 3723000 → "1 h 2 min 3 s". */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let s = Math.round(Math.abs(ms) / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [h ? `${h} h` : '', m ? `${m} min` : '', `${s} s`].filter(Boolean);
  if (h || m) { if (s === 0) parts.pop(); }
  return sign + parts.join(' ');
}

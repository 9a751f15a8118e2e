/**
 * The trace headers a receiver adds after an SPF check: `Received-SPF` (RFC 7208 §9.1) in the
 * format of the reference implementation, pyspf (result, comment, then client-ip, envelope-from,
 * helo, receiver, problem or mechanism, identity), and the `spf=` part of Authentication-Results
 * (RFC 8601). Pure functions of a check_host() outcome; values that are not dot-atoms are quoted.
 */
import type { CheckHostOutcome, SpfResult } from './evaluate.ts';

const TAGS: Record<SpfResult, string> = {
  pass: 'Pass', neutral: 'Neutral', fail: 'Fail', softfail: 'SoftFail', none: 'None', temperror: 'TempError', permerror: 'PermError',
};

const DOT_ATOM = /^[0-9a-z!#$%&'*+/=?^_`{}|~-]+(\.[0-9a-z!#$%&'*+/=?^_`{}|~-]+)*$/i;

/** A header parameter value: as is when a dot-atom, else a quoted-string. */
export function quoteValue(value: string): string {
  if (DOT_ATOM.test(value)) return value;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\0/g, '\\x00')}"`;
}

/** The comment in words, as a receiver writes it. */
export function resultComment(o: CheckHostOutcome): string {
  const ip = o.ip.trim();
  switch (o.result) {
    case 'pass': return `domain of ${o.domain} designates ${ip} as permitted sender`;
    case 'softfail': return `transitioning domain of ${o.domain} does not designate ${ip} as permitted sender`;
    case 'neutral':
    case 'none': return `${ip} is neither permitted nor denied by domain of ${o.domain}`;
    case 'permerror': return `permanent error in processing domain of ${o.domain}: ${o.problem ?? 'unknown problem'}`;
    case 'temperror': return `temporary error in processing during lookup of ${o.domain}`;
    case 'fail': return `domain of ${o.domain} does not designate ${ip} as permitted sender`;
  }
}

/** The value of the Received-SPF header (without the field name), unfolded. */
export function receivedSpfValue(o: CheckHostOutcome): string {
  const parts = [`${TAGS[o.result]} (${o.receiver}: ${resultComment(o)})`];
  parts.push(`client-ip=${o.ip.trim()};`);
  if (o.identity === 'mailfrom') parts.push(`envelope-from=${quoteValue(o.sender)};`);
  if (o.helo) parts.push(`helo=${quoteValue(o.helo)};`);
  parts.push(`receiver=${quoteValue(o.receiver)};`);
  if (o.result === 'permerror' && o.problemTerm) parts.push(`problem=${quoteValue(o.problemTerm)};`);
  if (o.mechanism) parts.push(`mechanism=${quoteValue(o.mechanism)};`);
  parts.push(`identity=${o.identity}`);
  return parts.join(' ');
}

/** "Received-SPF: …" folded at spaces to lines of at most 78 characters. */
export function receivedSpfHeader(o: CheckHostOutcome): string {
  const words = `Received-SPF: ${receivedSpfValue(o)}`.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > 78) {
      lines.push(line);
      line = ` ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** The spf= result of an Authentication-Results header, e.g. "spf=pass smtp.mailfrom=example.com". */
export function authenticationResultsSpf(o: CheckHostOutcome, authservId: string): string {
  const prop = o.identity === 'mailfrom' ? `smtp.mailfrom=${quoteValue(o.domain)}` : `smtp.helo=${quoteValue(o.helo)}`;
  return `Authentication-Results: ${authservId}; spf=${o.result} (${o.receiver}: ${resultComment(o)}) ${prop}`;
}

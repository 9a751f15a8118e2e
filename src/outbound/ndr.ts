/**
 * Delivery status notifications (RFC 3464 multipart/report): a human part saying in plain words what
 * happened and what to do (explain.ts), the machine-readable message/delivery-status part, and the
 * original message's header section (text/rfc822-headers). Used for failures (NDR) and the one-time
 * delay notice. Pure: the delivery manager enqueues the result with the null sender <>, so a report
 * is never itself bounced.
 */
import { randomBytes } from 'node:crypto';
import type { Outcome, QueueId } from '../core/types.ts';
import { explainOutcome, type Reader } from './explain.ts';

export interface DsnInput {
  kind: 'failed' | 'delayed';
  queueId: QueueId;
  reportingMta: string;
  from: string;
  to: string[];
  originalSender: string;
  originalSubject?: string;
  arrivalDate: Date;
  now: Date;
  outcomes: Outcome[];
  /** Original header section (CRLF line ends). */
  originalHeaders: string;
  envid?: string;
  /** For delay notices: when smarthost gives up. */
  willRetryUntil?: Date;
  /** The whole original message (the client asked RET=FULL); otherwise only its headers are returned. */
  originalMessage?: Buffer;
  /** Who reads it: the message's sender (default) or the admin copy (ndr.adminCopy), which is told about badmail. */
  reader?: Reader;
  /** Its name in badmail/ (without .BAD), for the admin copy of a failure report. */
  badmailName?: string;
}

/** RFC 2047 encoded-word when the text is not plain ASCII. */
function headerText(text: string): string {
  const clean = text.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(clean) ? clean : `=?UTF-8?B?${Buffer.from(clean).toString('base64')}?=`;
}

const dsnDate = (d: Date) => d.toUTCString().replace('GMT', '+0000');

function humanPart(input: DsnInput): string {
  const subject = input.originalSubject ? `"${input.originalSubject}"` : '(no subject)';
  const lines = input.kind === 'failed'
    ? [`Your message ${subject} could not be delivered to the recipients below. It will not be sent again.`]
    : [`Your message ${subject} has not been delivered yet to the recipients below. smarthost keeps trying until ${input.willRetryUntil ? dsnDate(input.willRetryUntil) : 'it expires'}; you do not need to send it again.`];
  lines.push('');
  for (const o of input.outcomes) {
    const why = explainOutcome(o, input.reader ?? 'sender');
    lines.push(`  ${o.recipient}`, `    The server said: ${o.diagnostic ?? o.reason ?? o.status}`, `    What it means:   ${why.meaning}`, `    What to do:      ${why.fix}`, '');
  }
  if (input.kind === 'failed' && input.reader === 'admin' && input.badmailName) {
    const name = input.badmailName;
    lines.push(`This is the administrator's copy. The message is in the relay's badmail folder as ${name}.BAD (${name}.BDR says why); copy the .BAD file into the pickup folder to send it again once the cause is fixed.`, '');
  }
  lines.push(`Queue id: ${input.queueId}. Reported by ${input.reportingMta}.`);
  return lines.join('\r\n');
}

function statusPart(input: DsnInput): string {
  const head = [`Reporting-MTA: dns; ${input.reportingMta}`];
  if (input.envid) head.push(`Original-Envelope-Id: ${input.envid}`);
  head.push(`Arrival-Date: ${dsnDate(input.arrivalDate)}`);
  const blocks = input.outcomes.map((o) => {
    const f = [`Final-Recipient: rfc822; ${o.recipient}`, `Action: ${input.kind}`, `Status: ${o.status}`];
    if (o.remoteMta) f.push(`Remote-MTA: dns; ${o.remoteMta}`);
    if (o.diagnostic) f.push(`Diagnostic-Code: smtp; ${o.diagnostic}`);
    f.push(`Last-Attempt-Date: ${dsnDate(new Date(o.at))}`);
    if (input.kind === 'delayed' && input.willRetryUntil) f.push(`Will-Retry-Until: ${dsnDate(input.willRetryUntil)}`);
    return f.join('\r\n');
  });
  return [head.join('\r\n'), ...blocks].join('\r\n\r\n');
}

/** Builds the whole report message (CRLF line ends). */
export function buildDsn(input: DsnInput): Buffer {
  const boundary = `=_smarthost_${randomBytes(8).toString('hex')}`;
  const subjectPrefix = input.kind === 'failed' ? 'Undeliverable' : 'Delivery delayed';
  const human = humanPart(input);
  const ascii = /^[\x00-\x7e]*$/.test(human);
  const parts = [
    `From: Mail Delivery System <${input.from}>`,
    `To: ${input.to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: ${headerText(`${subjectPrefix}: ${input.originalSubject ?? '(no subject)'}`)}`,
    `Date: ${dsnDate(input.now)}`,
    `Message-ID: <${input.queueId}.${input.kind}.${randomBytes(4).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a delivery status notification (RFC 3464).',
    '',
    `--${boundary}`,
    `Content-Type: text/plain; charset=utf-8`,
    `Content-Transfer-Encoding: ${ascii ? '7bit' : 'base64'}`,
    '',
    ascii ? human : Buffer.from(human).toString('base64').replace(/.{76}/g, '$&\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    statusPart(input),
    '',
    `--${boundary}`,
    ...(input.originalMessage
      ? ['Content-Type: message/rfc822', '', '']
      : ['Content-Type: text/rfc822-headers', '', input.originalHeaders.replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, ''), '']),
  ];
  const tail = `\r\n--${boundary}--\r\n`;
  if (!input.originalMessage) return Buffer.from(parts.join('\r\n') + tail.slice(2));
  return Buffer.concat([Buffer.from(parts.slice(0, -1).join('\r\n') + '\r\n'), input.originalMessage, Buffer.from(tail)]);
}

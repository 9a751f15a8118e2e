/** OutboundMessage literals for transport tests: a message as the delivery manager hands it over. */
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { OutboundMessage } from '../../../src/core/types.ts';

export function outbound(raw: string | Buffer, mailFrom: string, recipients: string[]): OutboundMessage {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.replace(/\r?\n/g, '\r\n'));
  return {
    id: `T${randomBytes(6).toString('hex')}`,
    mailFrom,
    recipients,
    size: buf.length,
    open: () => Readable.from([buf]),
    read: async () => buf,
  };
}

/** A multipart message with one attachment of `size` random bytes. */
export function withAttachment(from: string, to: string, size: number): { raw: Buffer; attachment: Buffer } {
  const attachment = randomBytes(size);
  const b64 = attachment.toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.from([
    `From: ${from}`, `To: ${to}`, 'Subject: scan with a big attachment', 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '',
    'See attached scan.', '--b1', 'Content-Type: application/pdf; name="scan.pdf"',
    'Content-Disposition: attachment; filename="scan.pdf"', 'Content-Transfer-Encoding: base64', '', b64, '--b1--', '',
  ].join('\r\n'));
  return { raw, attachment };
}

/**
 * Hands a finished message straight to nodemailer's SMTP transport (pooled or not), skipping
 * Mailer.sendMail's MIME compilation.
 *
 * Why: for a `raw` message, sendMail builds a MailComposer, a MimeNode (random boundary and
 * Message-ID), a PassThrough and a pipeline with an AbortController per message, only to pass the
 * bytes through and add a final CRLF when the message lacks one. That was about 7% of the relay's
 * event loop per 1 KB message. nodemailer's DataStream adds that final CRLF itself before the
 * closing dot, so the bytes on the wire are the same.
 *
 * What it guarantees: the envelope is normalised by nodemailer's own MimeNode.setEnvelope
 * (punycode for ASCII local parts, duplicate recipients dropped, SIZE carried), exactly as
 * sendMail did, and remembered per list of addresses; errors and the `info` object are the transport's own, unchanged.
 */
import MimeNode from 'nodemailer/lib/mime-node';

export interface RawEnvelope {
  from: string;
  to: string[];
  size?: number;
  /** MAIL FROM gets BODY=8BITMIME when the upstream offers 8BITMIME (RFC 6152). */
  use8BitMime?: boolean;
}

/** What the transport reports for a sent message (nodemailer's SentMessageInfo). */
export interface SentInfo {
  accepted?: unknown[];
  rejected?: unknown[];
  rejectedErrors?: unknown[];
  response?: string;
  [key: string]: unknown;
}

/** The part of nodemailer's transports (SMTPPool, SMTPTransport) this module calls. */
interface MailTransport {
  send(mail: unknown, callback: (err: Error | null, info?: unknown) => void): unknown;
}

/** One node, used only for its envelope normalisation: setEnvelope replaces the whole envelope object each time. */
const envelopeNode = new MimeNode();

/**
 * Normalised sender and recipients by the envelope's addresses. Parsing them (addressparser,
 * punycode) was 3% of the event loop per message, and a relay sees the same few printers and
 * mailboxes again and again. Bounded: emptied when full.
 */
const normalizedAddresses = new Map<string, { from: string; to: string[] }>();
const NORMALIZED_CACHE_LIMIT = 1000;

/** The envelope as sendMail({ envelope }) made it: the same addresses, the other fields (size) copied. */
export function normalizeEnvelope(envelope: RawEnvelope): RawEnvelope {
  const key = `${envelope.from}\n${envelope.to.join('\n')}`;
  let addresses = normalizedAddresses.get(key);
  if (!addresses) {
    const { from, to } = envelopeNode.setEnvelope({ from: envelope.from, to: envelope.to } as never).getEnvelope() as unknown as { from: string; to: string[] };
    addresses = { from, to };
    if (normalizedAddresses.size >= NORMALIZED_CACHE_LIMIT) normalizedAddresses.clear();
    normalizedAddresses.set(key, addresses);
  }
  const { from: _from, to: _to, ...others } = envelope;
  return { ...others, from: addresses.from, to: addresses.to.slice() };
}

/**
 * Sends `stream` (the whole message, CRLF line ends) with `envelope` over `transporter.transporter`.
 * `label` names the message in nodemailer's trace lines (where sendMail put a generated Message-ID).
 */
export function sendRaw(transporter: unknown, envelope: RawEnvelope, stream: NodeJS.ReadableStream, label: string): Promise<SentInfo> {
  const transport = (transporter as { transporter: MailTransport }).transporter;
  const normalized = normalizeEnvelope(envelope);
  const mail = {
    data: {},
    message: {
      getEnvelope: () => normalized,
      messageId: () => label,
      getHeader: () => '',
      // The pool asks again only to move a message not yet read to another connection.
      createReadStream: () => stream,
    },
  };
  return new Promise((resolve, reject) => {
    transport.send(mail, (err, info) => (err ? reject(err) : resolve((info ?? {}) as SentInfo)));
  });
}

/**
 * Preparing a message for Microsoft Graph, which has no SMTP envelope and mails every address in
 * the To/Cc/Bcc headers. The envelope must win:
 *   - recipients only in the envelope (Bcc, or an alias the device added) become a Bcc: header;
 *   - header recipients not in this attempt's envelope are removed from To/Cc, so Graph does not
 *     mail them (they were never asked for, or a previous attempt already delivered to them). A To/Cc
 *     field left empty is dropped. The original header is not kept elsewhere: Graph would mail it.
 *   - an existing Bcc: header is replaced by the computed one.
 * When nothing needs changing the original bytes are returned untouched.
 *
 * Also splits a large message into a draft without attachments plus the attachments, for the
 * draft + upload-session path (bodies and headers rebuilt by nodemailer's MailComposer; Exchange
 * rebuilds the MIME structure anyway, so client DKIM/S-MIME signatures do not survive that path).
 */
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { simpleParser, type AddressObject } from 'mailparser';

export interface Reconciled {
  message: Buffer;
  changed: boolean;
  /** Header recipients removed because they are not in the envelope. */
  removed: string[];
  /** Envelope recipients carried in the Bcc header. */
  bcc: string[];
}

const RECIPIENT_FIELDS = new Set(['to', 'cc']);

/** Makes the headers name exactly the envelope recipients (see the module comment). */
export function reconcileRecipients(raw: Buffer, envelopeRecipients: readonly string[]): Reconciled {
  const wanted = new Map(envelopeRecipients.map((r) => [r.toLowerCase(), r] as const));
  const { fields, body, eol } = splitHeader(raw);
  const visible = new Set<string>();
  const removed: string[] = [];
  const oldBcc = new Set<string>();
  let changed = false;
  const out: string[] = [];
  for (const field of fields) {
    const name = field.slice(0, field.indexOf(':')).trim().toLowerCase();
    const value = field.slice(field.indexOf(':') + 1).replace(/\r?\n/g, '');
    if (name === 'bcc') {
      for (const a of addressparser(value, { flatten: true })) if (a.address) oldBcc.add(a.address.toLowerCase());
      continue;
    }
    if (!RECIPIENT_FIELDS.has(name)) { out.push(field); continue; }
    const addrs = addressparser(value, { flatten: true }).filter((a) => a.address);
    const kept = addrs.filter((a) => wanted.has(a.address.toLowerCase()));
    for (const a of addrs) if (!wanted.has(a.address.toLowerCase())) removed.push(a.address);
    for (const a of kept) visible.add(a.address.toLowerCase());
    if (kept.length === addrs.length) { out.push(field); continue; }
    changed = true;
    if (kept.length > 0) out.push(`${field.slice(0, field.indexOf(':'))}: ${kept.map(formatAddress).join(`,${eol} `)}`);
  }
  const bcc = [...wanted.keys()].filter((r) => !visible.has(r));
  if (bcc.length !== oldBcc.size || bcc.some((r) => !oldBcc.has(r))) changed = true;
  if (!changed) return { message: raw, changed: false, removed, bcc };
  if (bcc.length) out.push(`Bcc: ${bcc.map((r) => `<${wanted.get(r)}>`).join(`,${eol} `)}`);
  const head = Buffer.from(out.join(eol) + eol + eol, 'latin1');
  return { message: Buffer.concat([head, body]), changed: true, removed, bcc };
}

function formatAddress(a: { name: string; address: string }): string {
  if (!a.name) return `<${a.address}>`;
  const encoded = /^=\?[^?]+\?[BbQq]\?[^?]*\?=$/.test(a.name);
  const needsQuotes = !encoded && /[()<>@,;:\\".[\]]/.test(a.name);
  return `${needsQuotes ? `"${a.name.replace(/(["\\])/g, '\\$1')}"` : a.name} <${a.address}>`;
}

/** Header fields (with folded continuation lines, as latin1 so 8-bit bytes survive) and the untouched body. */
export function splitHeader(raw: Buffer): { fields: string[]; body: Buffer; eol: string } {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  let end = raw.length;
  let sep = 0;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) { end = crlf; sep = 4; } else if (lf >= 0) { end = lf; sep = 2; }
  const eol = sep === 2 ? '\n' : '\r\n';
  const fields: string[] = [];
  for (const line of raw.subarray(0, end).toString('latin1').split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += `${eol}${line}`;
    else if (line !== '') fields.push(line);
  }
  return { fields, body: raw.subarray(Math.min(raw.length, end + sep)), eol };
}

export interface SplitMessage {
  /** The message without its attachments, as MIME. */
  draft: Buffer;
  attachments: { name: string; contentType: string; content: Buffer; contentId?: string; inline: boolean }[];
}

/** Splits a (reconciled) message into a draft MIME without attachments and the attachments themselves. */
export async function splitAttachments(raw: Buffer): Promise<SplitMessage> {
  const m = await simpleParser(raw, { skipTextToHtml: true, skipTextLinks: true });
  const addrs = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a : a ? [a] : []).flatMap((x) => x.value).filter((v) => v.address).map((v) => ({ name: v.name, address: v.address! }));
  const custom: Record<string, string> = {};
  for (const line of m.headerLines) {
    if (/^x-/i.test(line.key)) custom[line.key] = line.line.slice(line.line.indexOf(':') + 1).trim();
  }
  const sender = m.headers.get('sender') as AddressObject | undefined;
  const composer = new MailComposer({
    from: addrs(m.from)[0],
    sender: sender ? addrs(sender)[0] : undefined,
    replyTo: addrs(m.replyTo),
    to: addrs(m.to), cc: addrs(m.cc), bcc: addrs(m.bcc),
    subject: m.subject, date: m.date, messageId: m.messageId, inReplyTo: m.inReplyTo,
    references: Array.isArray(m.references) ? m.references.join(' ') : m.references,
    text: m.text, html: m.html === false ? undefined : m.html,
    headers: custom,
  });
  const node = composer.compile();
  node.keepBcc = true;
  const draft = await node.build();
  return {
    draft,
    attachments: m.attachments.map((a, i) => ({
      name: a.filename ?? `attachment-${i + 1}`,
      contentType: a.contentType || 'application/octet-stream',
      content: a.content,
      contentId: a.contentId?.replace(/^<|>$/g, ''),
      inline: a.contentDisposition === 'inline' && Boolean(a.contentId),
    })),
  };
}

/**
 * The sender modes' header rewrite (pure), shared by the `senders:` rules (applied on the way into
 * the spool) and by routes (applied at delivery, per route):
 *   send-as    keep From and envelope (the mailbox needs Send As on the From address);
 *   rewrite    From and envelope sender become a fixed address, the original From goes to Reply-To;
 *   on-behalf  keep From, set Sender (and the envelope sender) to the upstream mailbox.
 */

/** How the sender is presented upstream. */
export type SenderModeSpec =
  | { mode: 'send-as' }
  | { mode: 'rewrite'; address: string }
  | { mode: 'on-behalf'; mailbox: string };

/**
 * Applies a rule's mode to a raw message (headers + body) and its envelope sender. Only the header
 * block changes; the body bytes are kept as they are. The null sender (<>) stays null.
 */
export function applySenderMode(raw: Buffer, envelope: { mailFrom: string }, spec: SenderModeSpec): { message: Buffer; mailFrom: string } {
  if (spec.mode === 'send-as') return { message: raw, mailFrom: envelope.mailFrom };
  const { fields, body, eol } = splitHeader(raw);
  const fromIndex = fields.findIndex((f) => fieldName(f) === 'from');
  const originalFrom = fromIndex >= 0 ? fieldValue(fields[fromIndex]) : undefined;
  let out: string[];
  let mailFrom: string;
  if (spec.mode === 'rewrite') {
    const display = originalFrom ? displayName(originalFrom) : undefined;
    const newFrom = `From: ${display ? `${display} ` : ''}<${asLatin1(spec.address)}>`;
    out = fields.filter((f) => fieldName(f) !== 'sender');
    if (fromIndex >= 0) out = out.map((f) => (fieldName(f) === 'from' ? newFrom : f));
    else out.unshift(newFrom);
    // A Reply-To the device set on purpose wins; otherwise replies go to the original sender.
    if (originalFrom && !out.some((f) => fieldName(f) === 'reply-to')) out.push(`Reply-To: ${originalFrom}`);
    mailFrom = envelope.mailFrom === '' ? '' : spec.address;
  } else {
    out = fields.filter((f) => fieldName(f) !== 'sender');
    const at = out.findIndex((f) => fieldName(f) === 'from');
    out.splice(at >= 0 ? at + 1 : 0, 0, `Sender: <${asLatin1(spec.mailbox)}>`);
    mailFrom = envelope.mailFrom === '' ? '' : spec.mailbox;
  }
  const head = Buffer.from(out.join(eol) + eol + eol, 'latin1');
  return { message: Buffer.concat([head, body]), mailFrom };
}

/** Splits the header block into fields (each with its folded continuation lines) and returns the body untouched. */
function splitHeader(raw: Buffer): { fields: string[]; body: Buffer; eol: string } {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  let end: number;
  let sep: number;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) { end = crlf; sep = 4; } else if (lf >= 0) { end = lf; sep = 2; } else { end = raw.length; sep = 0; }
  const eol = sep === 2 ? '\n' : '\r\n';
  // latin1 keeps every byte of 8-bit headers as it was; utf8 would mangle invalid sequences.
  const lines = raw.subarray(0, end).toString('latin1').split(/\r?\n/);
  const fields: string[] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += `${eol}${line}`;
    else if (line !== '') fields.push(line);
  }
  return { fields, body: raw.subarray(Math.min(raw.length, end + sep)), eol };
}

/** Header fields are handled as latin1 strings so 8-bit bytes survive; new UTF-8 text is converted to match. */
function asLatin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function fieldName(field: string): string {
  return field.slice(0, field.indexOf(':')).trim().toLowerCase();
}

function fieldValue(field: string): string {
  return field.slice(field.indexOf(':') + 1).replace(/\r?\n/g, '').trim();
}

/** The display-name part of `"Name" <a@b>` or `Name <a@b>`; undefined for a bare address. */
function displayName(value: string): string | undefined {
  const m = /^(.*?)<[^>]*>\s*$/.exec(value);
  const name = m?.[1].trim();
  return name ? name : undefined;
}

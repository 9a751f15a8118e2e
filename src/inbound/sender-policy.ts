/**
 * Sender policy (send-as), checked before the client hears 250: at MAIL FROM on the envelope sender,
 * and again at the end of DATA on the From header. Two questions are asked:
 *   1. may this client (by address, or by authenticated user) use this sender at all? (`senders:` rules)
 *   2. may the upstream's mailbox send as this address? (`upstreams[].mailbox` + `sendAs`)
 * A "no" is a `550 5.7.60` reply that names the address and the fix, at once, instead of an NDR
 * from Microsoft days later (the seeds' "550 5.7.1 Client does not have permissions to send as").
 *
 * Also holds the pure header rewrite for the rule modes, applied at delivery time:
 *   send-as    keep From and envelope (the mailbox needs Send As on the From address);
 *   rewrite    From and envelope sender become a fixed address, the original From goes to Reply-To
 *              (the IIS masquerade, done so replies still reach the device's owner);
 *   on-behalf  keep From, set Sender (and the envelope sender) to the upstream mailbox; the mailbox
 *              needs Send on Behalf. Side effect, from the seeds (000_ca73ced6ab05504b.txt): granting
 *              Send on Behalf through Outlook's Delegate Access makes the mailbox a *delegate*, and a
 *              delegate receives copies of the owner's meeting requests. Grant it with
 *              Set-Mailbox OWNER -GrantSendOnBehalfTo MAILBOX instead, or prefer Send As.
 * Pure functions: no I/O; the decision carries the reason.
 */
import type { PolicyDecision } from '../core/types.ts';
import { inRanges, normalizeAddress, parseRange, type Range } from '../core/cidr.ts';
import type { Config } from '../config/schema.ts';
import type { SenderRule } from '../config/sections/senders.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import type { SenderCheckContext } from './types.ts';

export type { SenderCheckContext };
/** The sender policy answers at once (no I/O), so its check is synchronous. */
export type SenderCheck = (ctx: SenderCheckContext) => PolicyDecision;

/** How the sender is presented upstream; resolved from the matching rule and its upstream. */
export type SenderModeSpec =
  | { mode: 'send-as' }
  | { mode: 'rewrite'; address: string }
  | { mode: 'on-behalf'; mailbox: string };

type PolicyConfig = Pick<Config, 'senders' | 'upstreams'>;

interface CompiledRule {
  index: number;
  rule: SenderRule;
  ranges: Range[];
  users: Set<string>;
}

/** Builds the check the listener calls at MAIL FROM (stage 'mail') and at end of DATA (stage 'data'). */
export function createSenderCheck(config: PolicyConfig): SenderCheck {
  const rules = compileRules(config.senders);
  return (ctx) => {
    const addresses = addressesToCheck(ctx);
    if (addresses.length === 0) return { verdict: 'none' };
    const match = findRule(rules, ctx);
    if (match) {
      for (const address of addresses) {
        if (!addressAllowed(address, match.rule.allow)) {
          const who = ctx.user ? `user ${ctx.user}` : `client ${ctx.clientAddress}`;
          return refuse(address, `${who} may not send as it (senders rule ${match.index + 1} allows ${match.rule.allow.join(', ')})`,
            `set the device to one of those addresses, or add it to that rule's allow list`);
        }
      }
    }
    const upstream = upstreamFor(config, match?.rule);
    const mode = match?.rule.mode ?? 'send-as';
    if (!upstream || mode === 'rewrite') return { verdict: 'accept', reason: mode === 'rewrite' ? `sender rewritten to ${match?.rule.rewriteTo}` : undefined };
    const mailbox = mailboxOf(upstream);
    if (!checksSendAs(upstream, mailbox)) return { verdict: 'accept' };
    for (const address of addresses) {
      if (!mailboxMaySendAs(upstream, mailbox, address)) {
        const grant = mode === 'on-behalf' ? `Set-Mailbox ${address} -GrantSendOnBehalfTo ${mailbox}` : `Add-RecipientPermission ${address} -Trustee ${mailbox ?? 'MAILBOX'} -AccessRights SendAs`;
        return refuse(address, `upstream ${upstream.name} (mailbox ${mailbox ?? 'none'}) has no ${mode === 'on-behalf' ? 'Send on Behalf' : 'Send As'} on it`,
          `grant it (${grant}) and list it under the upstream's sendAs, or use a sender rule with mode rewrite`);
      }
    }
    return { verdict: 'accept' };
  };
}

/** The rule, upstream and mode that apply to a client; the lead uses it to pick the route and the rewrite. */
export function senderRouteFor(config: PolicyConfig, ctx: Pick<SenderCheckContext, 'clientAddress' | 'user'>): { rule?: SenderRule; upstream?: UpstreamConfig; spec: SenderModeSpec } {
  const match = findRule(compileRules(config.senders), ctx);
  const upstream = upstreamFor(config, match?.rule);
  return { rule: match?.rule, upstream, spec: specFor(match?.rule, upstream) };
}

/** The SenderModeSpec of a rule (undefined rule = send-as). */
export function specFor(rule: SenderRule | undefined, upstream: UpstreamConfig | undefined): SenderModeSpec {
  if (rule?.mode === 'rewrite' && rule.rewriteTo) return { mode: 'rewrite', address: rule.rewriteTo };
  const mailbox = upstream ? mailboxOf(upstream) : undefined;
  if (rule?.mode === 'on-behalf' && mailbox) return { mode: 'on-behalf', mailbox };
  return { mode: 'send-as' };
}

/** The Microsoft 365 mailbox an upstream sends through: `mailbox`, the graph:// URL's, or `username`. */
export function mailboxOf(upstream: UpstreamConfig): string | undefined {
  if (upstream.mailbox) return upstream.mailbox.toLowerCase();
  const graph = /^graph:\/\/[^/]+\/(.+)$/.exec(upstream.url);
  if (graph) return decodeURIComponent(graph[1]).toLowerCase();
  return upstream.username?.toLowerCase();
}

/** Whether this upstream restricts From addresses (Exchange Online submission, Graph, or an explicit sendAs list). */
function checksSendAs(upstream: UpstreamConfig, mailbox: string | undefined): boolean {
  if (upstream.sendAs.length > 0) return true;
  if (!mailbox) return false;
  return upstream.url.startsWith('graph://') || upstream.auth === 'xoauth2' || /\.office365\.com(:\d+)?(\/|$)/i.test(upstream.url.replace(/^[a-z+]+:\/\//, ''));
}

function mailboxMaySendAs(upstream: UpstreamConfig, mailbox: string | undefined, address: string): boolean {
  if (mailbox && address === mailbox) return true;
  return addressAllowed(address, upstream.sendAs);
}

function compileRules(senders: readonly SenderRule[]): CompiledRule[] {
  return senders.map((rule, index) => ({
    index,
    rule,
    ranges: rule.clients.map((c) => parseRange(c)).filter((r): r is Range => r !== undefined),
    users: new Set(rule.users.map((u) => u.toLowerCase())),
  }));
}

/** First rule naming the authenticated user, else first rule whose client ranges hold the address. */
function findRule(rules: CompiledRule[], ctx: Pick<SenderCheckContext, 'clientAddress' | 'user'>): CompiledRule | undefined {
  const user = ctx.user?.toLowerCase();
  if (user) {
    const byUser = rules.find((r) => r.users.has(user));
    if (byUser) return byUser;
  }
  const address = ctx.clientAddress ? normalizeAddress(ctx.clientAddress) : '';
  return rules.find((r) => r.ranges.length > 0 && address !== '' && inRanges(address, r.ranges));
}

function upstreamFor(config: PolicyConfig, rule: SenderRule | undefined): UpstreamConfig | undefined {
  if (rule?.upstream) return config.upstreams.find((u) => u.name === rule.upstream);
  return config.upstreams[0];
}

/** MAIL FROM at stage 'mail'; the From header (and the envelope again) at stage 'data'. The null sender is not checked. */
function addressesToCheck(ctx: SenderCheckContext): string[] {
  const list = [ctx.mailFrom, ctx.stage === 'data' ? ctx.headerFrom : undefined]
    .filter((a): a is string => typeof a === 'string' && a.trim() !== '')
    .map((a) => a.trim().toLowerCase());
  return [...new Set(list)];
}

/** Exact address, `*@domain`, or `*` for any address. */
export function addressAllowed(address: string, patterns: readonly string[]): boolean {
  const a = address.toLowerCase();
  const domain = a.slice(a.lastIndexOf('@') + 1);
  return patterns.some((p) => {
    const q = p.trim().toLowerCase();
    if (q === '*') return true;
    if (q.startsWith('*@')) return domain === q.slice(2);
    return q === a;
  });
}

function refuse(address: string, why: string, fix: string): PolicyDecision {
  return { verdict: 'reject', code: 550, status: '5.7.60', message: `Sender <${address}> refused: ${why}; fix: ${fix}` };
}

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

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

import type { SenderModeSpec } from '../routing/sender-mode.ts';
export type { SenderModeSpec };

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

// The header rewrite itself lives in src/routing/sender-mode.ts: routes apply it at delivery time too.
export { applySenderMode } from '../routing/sender-mode.ts';

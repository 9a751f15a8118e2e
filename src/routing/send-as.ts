/**
 * Send As, per route: may the Microsoft 365 mailbox a route sends through use this sender? The
 * listener asks before the client hears 250 (src/inbound/sender-policy.ts), so a sender Exchange
 * would refuse later (`5.7.60` / Graph `ErrorSendAsDenied`, then an NDR or badmail) is refused at
 * once with the route, the mailbox and the grant that fixes it.
 *
 * A route's sender policy decides what is checked:
 *   send-as    the envelope sender (after masquerade) and the From: address must be the mailbox or
 *              in its `sendAs` list;
 *   on-behalf  the From: address needs Send on Behalf (listed under `sendAs` too); the envelope
 *              becomes the mailbox itself;
 *   rewrite    always fine: the route sends as `rewriteTo` (config check warns when that is not sendable).
 * Failover: a route's upstreams are tried in order, so its FIRST upstream decides. A message accepted
 * for it could still be refused by a later one after a failover; `sendAsFailoverWarnings` tells
 * `config check` which later upstreams may not send as what the first may.
 * Only upstreams that restrict senders are checked (checksSendAs): Exchange Online SMTP AUTH, Graph,
 * and any upstream with a `sendAs` list (a connector's accepted domains). Pure: no I/O.
 */
import type { Config } from '../config/schema.ts';
import type { RouteConfig } from '../config/sections/routing.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { createRouter } from './index.ts';

/** The Microsoft 365 mailbox an upstream sends through: `mailbox`, the graph:// URL's, or `username`. */
export function mailboxOf(upstream: UpstreamConfig): string | undefined {
  if (upstream.mailbox) return upstream.mailbox.toLowerCase();
  const graph = /^graph:\/\/[^/]+\/(.+)$/.exec(upstream.url);
  if (graph) return decodeURIComponent(graph[1]).toLowerCase();
  return upstream.username?.toLowerCase();
}

/** Whether this upstream restricts From addresses (Exchange Online submission, Graph, or an explicit sendAs list). */
export function checksSendAs(upstream: UpstreamConfig, mailbox = mailboxOf(upstream)): boolean {
  if (upstream.sendAs.length > 0) return true;
  if (!mailbox) return false;
  return upstream.url.startsWith('graph://') || upstream.auth === 'xoauth2' || /\.office365\.com(:\d+)?(\/|$)/i.test(upstream.url.replace(/^[a-z+]+:\/\//, ''));
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

export function mailboxMaySendAs(upstream: UpstreamConfig, mailbox: string | undefined, address: string): boolean {
  if (mailbox && address.toLowerCase() === mailbox) return true;
  return addressAllowed(address, upstream.sendAs);
}

/** Why a sender would be refused, and what fixes it. */
export interface SendAsProblem {
  address: string;
  /** "upstream o365 (mailbox scanner@contoso.com) has no Send As on it" */
  why: string;
  fix: string;
}

/** Would `upstream` refuse `address`? `mode` says which grant the fix names. */
export function upstreamSendAsProblem(upstream: UpstreamConfig, address: string, mode: 'send-as' | 'on-behalf' = 'send-as'): SendAsProblem | undefined {
  const mailbox = mailboxOf(upstream);
  const a = address.trim().toLowerCase();
  if (!a || !checksSendAs(upstream, mailbox) || mailboxMaySendAs(upstream, mailbox, a)) return undefined;
  if (upstream.url.startsWith('connector://')) {
    // A connector has no mailbox: the tenant takes senders of its accepted domains (explain.ts says the same for a refusal)
    const domain = a.slice(a.lastIndexOf('@') + 1);
    return {
      address: a,
      why: `upstream ${upstream.name} (connector to ${upstream.url.slice('connector://'.length)}) takes only the sender domains under its sendAs (${upstream.sendAs.join(', ')})`,
      fix: `add and verify ${domain} as an accepted domain of the tenant (Microsoft 365 admin center) and list it under the upstream's sendAs; the inbound connector must recognise this relay (its certificate name or IP); Send As grants (Add-RecipientPermission) do not apply to a connector`,
    };
  }
  const grant = mode === 'on-behalf' ? `Set-Mailbox ${a} -GrantSendOnBehalfTo ${mailbox}` : `Add-RecipientPermission ${a} -Trustee ${mailbox ?? 'MAILBOX'} -AccessRights SendAs`;
  return {
    address: a,
    why: `upstream ${upstream.name} (mailbox ${mailbox ?? 'none'}) has no ${mode === 'on-behalf' ? 'Send on Behalf' : 'Send As'} on it`,
    fix: `grant it (${grant}) and list it under the upstream's sendAs, or use sender mode rewrite`,
  };
}

/** The envelope sender as the route sends it (route's, else delivery's masquerade domain). */
export function masqueraded(address: string, route: RouteConfig | undefined, delivery?: { masqueradeDomain?: string }): string {
  const domain = route?.sender?.masqueradeDomain ?? delivery?.masqueradeDomain;
  if (!domain || !address) return address;
  const at = address.lastIndexOf('@');
  return at < 0 ? `${address}@${domain}` : `${address.slice(0, at)}@${domain}`;
}

type SendAsConfig = Pick<Config, 'upstreams'> & { delivery?: { masqueradeDomain?: string } };

/**
 * Would this route's mailbox refuse the sender? `mailFrom` is the envelope sender as stored,
 * `headerFrom` the From: address (undefined at MAIL FROM). The route's first upstream decides.
 */
export function routeSendAsProblem(config: SendAsConfig, route: RouteConfig, sender: { mailFrom?: string; headerFrom?: string }): SendAsProblem | undefined {
  const mode = route.sender?.mode ?? 'send-as';
  if (mode === 'rewrite') return undefined;
  const first = config.upstreams.find((u) => u.name === route.upstreams[0]);
  if (!first) return undefined;
  const onBehalf = mode === 'on-behalf' && Boolean(mailboxOf(first));
  // on-behalf: the envelope becomes the mailbox itself; only From: needs the grant
  const addresses = onBehalf ? [sender.headerFrom] : [sender.mailFrom ? masqueraded(sender.mailFrom, route, config.delivery) : undefined, sender.headerFrom];
  for (const address of addresses) {
    const problem = address ? upstreamSendAsProblem(first, address, onBehalf ? 'on-behalf' : 'send-as') : undefined;
    if (problem) return problem;
  }
  return undefined;
}

/** The addresses an upstream may send as: its mailbox and its sendAs patterns. */
function sendable(u: UpstreamConfig): string[] {
  const mailbox = mailboxOf(u);
  return [...(mailbox ? [mailbox] : []), ...u.sendAs.map((p) => p.trim().toLowerCase())];
}

/** May `u` send as everything `pattern` (an address, *@domain or *) stands for? */
function covers(u: UpstreamConfig, pattern: string): boolean {
  const own = u.sendAs.map((p) => p.trim().toLowerCase());
  if (own.includes('*')) return true;
  if (pattern === '*') return false;
  if (pattern.startsWith('*@')) return own.includes(pattern);
  return mailboxMaySendAs(u, mailboxOf(u), pattern);
}

/**
 * Config-time advice: a route's first upstream decides send-as before 250; a later upstream (its
 * failover) that may not send as the same addresses would refuse such a message after a failover.
 * Also: a rewrite route whose rewriteTo its upstreams may not send as.
 */
export function sendAsFailoverWarnings(config: Pick<Config, 'upstreams' | 'routes' | 'routing'>): string[] {
  const router = createRouter(config);
  // the implicit default route (every upstream in order) only when something can land on it
  const implicitUsed = !router.active || (!config.routing.default && !config.routes.some((r) => r.name === 'default'));
  const routes = router.routes().filter((r) => config.routes.includes(r) || implicitUsed);
  const byName = new Map(config.upstreams.map((u) => [u.name, u]));
  const out: string[] = [];
  for (const route of routes) {
    const label = config.routes.includes(route) ? `route ${route.name}` : 'the default route (every upstream, in order)';
    const ups = route.upstreams.map((n) => byName.get(n)).filter((u): u is UpstreamConfig => Boolean(u));
    if (route.sender?.mode === 'rewrite' && route.sender.rewriteTo) {
      for (const u of ups) {
        const p = upstreamSendAsProblem(u, route.sender.rewriteTo);
        if (p) out.push(`${label} rewrites senders to ${p.address}, but ${p.why}: Microsoft 365 would refuse every message of the route (5.7.60); fix: ${p.fix.replace(', or use sender mode rewrite', '')}`);
      }
      continue;
    }
    const [first, ...later] = ups;
    if (!first) continue;
    for (const u of later) {
      if (!checksSendAs(u)) continue;
      if (!checksSendAs(first)) {
        out.push(`${label}: its first upstream ${first.name} takes any sender, but ${u.name} (mailbox ${mailboxOf(u) ?? 'none'}) only ${sendable(u).join(', ')}: a message that fails over to ${u.name} with another sender would be refused (5.7.60); put ${u.name} in a route of its own, or use sender mode rewrite`);
        continue;
      }
      const missing = sendable(first).filter((p) => !covers(u, p));
      if (missing.length) {
        out.push(`${label}: senders are checked against its first upstream ${first.name} before 250; ${u.name} (mailbox ${mailboxOf(u) ?? 'none'}) may not send as ${missing.join(', ')}, so such a message would be refused (5.7.60) after a failover to it; grant that mailbox Send As on them and list them under ${u.name}'s sendAs`);
      }
    }
  }
  return out;
}

/**
 * Who a delivery report (NDR / delay notice) is sent as, per upstream.
 *
 * RFC 5321 §4.5.5 wants reports sent with the null reverse-path `<>` and a From like
 * MAILER-DAEMON@host. Exchange Online client submission (SMTP AUTH) and Graph only send as the
 * signed-in mailbox or an address it has Send As on (else `5.7.60` / `ErrorSendAsDenied`); a null
 * MAIL FROM cannot be relied on (research m365-quotas-ndr.md §5: "send the DSN as a normal message
 * from the authenticated mailbox … The null reverse-path … cannot be relied on here"). So through
 * those routes a report goes out as the route's mailbox (or `ndr.from`, when the mailbox may send
 * as it), envelope and From alike. Connector / direct send and other smart hosts keep `<>`.
 * Pure: no I/O.
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { m365Route } from './limits.ts';

export interface NdrSender {
  /** Envelope sender of the report: '' (null sender) or the address the route may send as. */
  mailFrom: string;
  /** Address in the report's From header. */
  from: string;
  /** The route only sends as a mailbox: the report must stay on this upstream (no failover to another mailbox). */
  pin: boolean;
  /** Why the configured `ndr.from` cannot be used on this route (config check / doctor warn with it). */
  warning?: string;
}

/** The Microsoft 365 mailbox an upstream sends as: `mailbox`, the graph:// URL's, or `username`. */
export function upstreamMailbox(upstream: Pick<UpstreamConfig, 'mailbox' | 'url' | 'username'>): string | undefined {
  if (upstream.mailbox) return upstream.mailbox.toLowerCase();
  const graph = /^graph:\/\/[^/]+\/(.+)$/.exec(upstream.url);
  if (graph) return decodeURIComponent(graph[1]).toLowerCase();
  return upstream.username?.toLowerCase();
}

/** May the upstream's mailbox send as `address`? (its own address, or one listed under sendAs: exact or *@domain) */
export function mailboxMaySendAs(upstream: Pick<UpstreamConfig, 'mailbox' | 'url' | 'username' | 'sendAs'>, address: string): boolean {
  const a = address.trim().toLowerCase();
  if (a === upstreamMailbox(upstream)) return true;
  const domain = a.slice(a.lastIndexOf('@') + 1);
  return upstream.sendAs.some((p) => {
    const q = p.trim().toLowerCase();
    return q === '*' || q === a || (q.startsWith('*@') && q.slice(2) === domain);
  });
}

/** Only the mailbox's own addresses get through: SMTP AUTH client submission and Graph. */
export function sendsAsMailboxOnly(upstream: UpstreamConfig): boolean {
  const route = m365Route(upstream);
  return route === 'smtp-auth' || route === 'graph';
}

/**
 * The sender of reports through `upstream`. `configured` is the global `ndr.from`; the upstream's
 * own `ndr.from` wins over it. Through a mailbox-only route an address the mailbox may not use is
 * replaced by the mailbox (with a warning), because Microsoft would refuse the report.
 */
export function ndrSenderFor(upstream: UpstreamConfig | undefined, configured: string | undefined, hostname: string): NdrSender {
  const own = upstream?.ndr?.from;
  const wanted = own ?? configured;
  if (!upstream || !sendsAsMailboxOnly(upstream)) {
    return { mailFrom: '', from: wanted ?? `MAILER-DAEMON@${hostname}`, pin: false };
  }
  const mailbox = upstreamMailbox(upstream);
  if (!mailbox) return { mailFrom: '', from: wanted ?? `MAILER-DAEMON@${hostname}`, pin: false, warning: `upstream ${upstream.name} names no mailbox, so its reports go out with the null sender <>, which Microsoft 365 refuses` };
  if (wanted && mailboxMaySendAs(upstream, wanted)) return { mailFrom: wanted.toLowerCase(), from: wanted, pin: true };
  const warning = wanted
    ? `${own ? `upstreams[${upstream.name}].ndr.from` : 'ndr.from'} ${wanted} is not an address mailbox ${mailbox} may send as through upstream ${upstream.name} (Microsoft 365 would refuse it with 5.7.60): its reports go out as ${mailbox}; list the address under the upstream's sendAs once the mailbox has Send As on it, or set ndr.from to the mailbox`
    : undefined;
  return { mailFrom: mailbox, from: mailbox, pin: true, warning };
}

/** Config-time warnings: every upstream whose reports cannot use the configured `ndr.from`. */
export function ndrSenderWarnings(upstreams: readonly UpstreamConfig[], configured: string | undefined, hostname: string): string[] {
  return upstreams.map((u) => ndrSenderFor(u, configured, hostname).warning).filter((w): w is string => Boolean(w));
}

/** The same, for each route's own `ndr.from` on the route's first upstream (the one its reports take). */
export function routeNdrWarnings(upstreams: readonly UpstreamConfig[], routes: ReadonlyArray<{ name: string; upstreams: string[]; ndr?: { from?: string } }>, hostname: string): string[] {
  return routes.flatMap((r) => {
    const first = upstreams.find((u) => u.name === r.upstreams[0]);
    const w = r.ndr?.from ? ndrSenderFor(first, r.ndr.from, hostname).warning : undefined;
    return w ? [`route ${r.name}: ${w.replace(/^ndr\.from/, 'ndr.from')}`] : [];
  });
}

/**
 * Microsoft 365 quotas are kept per *sending mailbox* (and Graph's throttling per app + mailbox), not
 * per smarthost upstream: two upstreams that send as the same mailbox share one budget. This module
 * names the budgets an upstream draws on and classifies the replies that say a budget is spent.
 *
 * Sources (../shared/research/m365-quotas-ndr.md §1–§4):
 *  - 30 messages/min and 10,000 recipients per rolling 24 h per mailbox; 3 concurrent SMTP AUTH
 *    connections per mailbox (`432 4.3.2`), https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
 *  - `554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException`: the mailbox is over
 *    its daily recipients; clears by itself within 24 h (same page)
 *  - Graph 429 + Retry-After, per app ID and mailbox, https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits
 *  - TERRL `550 5.7.233` (`5.7.232` trial tenants): tenant-wide, external recipients only,
 *    https://techcommunity.microsoft.com/blog/exchange/introducing-exchange-online-tenant-outbound-email-limits/4372797
 *  - `4.7.500-699`: back off; `5.2.251-255` continuous-error throttling, https://learn.microsoft.com/en-us/Exchange/mail-flow-best-practices/continuous-error-throttling-smtp-auth-submissions ;
 *    `5.1.8`, `5.7.705`, `5.7.708`: lifted only by an admin or Microsoft (NDR table,
 *    https://learn.microsoft.com/en-us/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online)
 * Pure: no I/O.
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { m365Route } from './limits.ts';
import { upstreamMailbox } from './ndr-sender.ts';

/** Exchange Online's simultaneous SMTP AUTH connections per mailbox. */
export const MAILBOX_CONNECTIONS = 3;
/** How long a mailbox over its daily quota waits before one message tries again. */
export const QUOTA_WINDOW_RETRY_MS = 60 * 60_000;
/** A `432 4.3.2` (too many connections): wait a little, then try again. */
export const CONNECTION_RETRY_MS = 10_000;
/** `4.7.500-699`: back off from this, doubling, up to BACKOFF_MAX_MS. */
export const BACKOFF_START_MS = 60_000;
export const BACKOFF_MAX_MS = 60 * 60_000;

export interface QuotaKeys {
  /** The budget of messages/min and recipients/day: `mailbox:ADDRESS`, or `upstream:NAME` for other smart hosts. */
  mailbox: string;
  /** Graph's throttling budget: `app:CLIENTID:ADDRESS` (Graph upstreams only). */
  app?: string;
  /** The tenant (its external-recipient limit, its blocks): `tenant:ID`. */
  tenant?: string;
  /** Recipient domains inside the tenant (the mailbox's and its Send As domains): the others are external. */
  internalDomains: string[];
}

/**
 * Does Microsoft's quota handling apply to this upstream? Microsoft 365 routes, and any upstream
 * that names the Microsoft 365 `mailbox` it sends through (e.g. a test endpoint standing in for it).
 * Other smart hosts reuse codes like 5.1.8 or 4.3.2 with other meanings: their replies are not read so.
 */
export function isMicrosoftMailboxRoute(upstream: UpstreamConfig): boolean {
  return m365Route(upstream) !== undefined || Boolean(upstream.mailbox);
}

/** Which budgets an upstream draws on. */
export function quotaKeys(upstream: UpstreamConfig): QuotaKeys {
  const route = m365Route(upstream);
  const address = route === 'smtp-auth' || route === 'graph' || upstream.mailbox ? upstreamMailbox(upstream) : undefined;
  const domain = address?.slice(address.lastIndexOf('@') + 1);
  const graphTenant = /^graph:\/\/([^/]+)\//.exec(upstream.url)?.[1];
  const tenant = upstream.oauth?.tenant ?? graphTenant ?? (route === 'connector' ? upstream.url.slice('connector://'.length) : domain);
  const internalDomains = [...new Set([domain, ...upstream.sendAs.map((p) => (p.includes('@') ? p.slice(p.lastIndexOf('@') + 1) : '')).filter((d) => d && d !== '*')].filter((d): d is string => Boolean(d)).map((d) => d.toLowerCase()))];
  return {
    mailbox: address ? `mailbox:${address}` : `upstream:${upstream.name}`,
    app: route === 'graph' && address ? `app:${upstream.oauth?.clientId ?? '?'}:${address}` : undefined,
    tenant: route && tenant ? `tenant:${tenant.toLowerCase()}` : undefined,
    internalDomains,
  };
}

/**
 * Upstreams' connection pools with Exchange's 3-per-mailbox cap shared out: SMTP AUTH upstreams
 * that sign in as the same mailbox together never hold more than 3 connections (pools keep idle
 * connections open, so the cap is on the pools, not only on the sends). The first upstream gets the
 * larger share. Other upstreams are returned as they are.
 */
export function mailboxConnectionCaps(upstreams: readonly UpstreamConfig[]): Map<string, number> {
  const caps = new Map<string, number>();
  const groups = new Map<string, UpstreamConfig[]>();
  for (const u of upstreams) {
    caps.set(u.name, u.maxConnections);
    if (m365Route(u) !== 'smtp-auth') continue;
    const key = quotaKeys(u).mailbox;
    groups.set(key, [...(groups.get(key) ?? []), u]);
  }
  for (const group of groups.values()) {
    let left = MAILBOX_CONNECTIONS;
    group.forEach((u, i) => {
      const share = Math.max(1, Math.ceil(left / (group.length - i)));
      const cap = Math.min(u.maxConnections, share);
      caps.set(u.name, cap);
      left = Math.max(0, left - cap);
    });
  }
  return caps;
}

export type QuotaVerdict =
  /** The mailbox's daily quota is spent: all its messages wait (hold), none is bounced. */
  | { kind: 'mailbox-quota'; scope: 'mailbox'; holdMs: number; why: string }
  /** Graph throttles this app on this mailbox: wait Retry-After. */
  | { kind: 'throttled'; scope: 'app'; holdMs: number; why: string }
  /** Too many simultaneous connections for the mailbox. */
  | { kind: 'connections'; scope: 'mailbox'; holdMs: number; why: string }
  /** The tenant's external-recipient limit: external recipients of the tenant wait. */
  | { kind: 'tenant-external'; scope: 'tenant'; holdMs: number; why: string }
  /** Microsoft restricts the sender for now: back off, doubling. */
  | { kind: 'backoff'; scope: 'mailbox'; holdMs: number; why: string }
  /** Blocked until a person acts: park every upstream of the mailbox (or tenant) and alert. */
  | { kind: 'park'; scope: 'mailbox' | 'tenant'; holdMs: 0; why: string };

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;

/** Classifies a reply that says a Microsoft 365 budget is spent or a block is in force; undefined otherwise. */
export function classifyQuota(reply: { replyCode?: number; status?: string; diagnostic?: string; retryAfterMs?: number }, transport: string): QuotaVerdict | undefined {
  const text = reply.diagnostic ?? '';
  const inText = ENHANCED.exec(text)?.[0];
  // the reply's own enhanced code wins over a transport's generic one (Graph says 4.7.0 for all 429s)
  const status = inText ?? reply.status ?? '';
  const [klass, subject, detail] = status.split('.').map(Number);
  if (transport === 'graph' && (reply.replyCode === 429 || /ApplicationThrottled|MailboxConcurrency/i.test(text))) {
    return { kind: 'throttled', scope: 'app', holdMs: reply.retryAfterMs ?? 30_000, why: `Microsoft Graph throttles this app on this mailbox (429${reply.retryAfterMs ? `, Retry-After ${Math.round(reply.retryAfterMs / 1000)} s` : ''})` };
  }
  if (/SubmissionQuotaExceeded/i.test(text) || (status === '5.1.90') || (status === '5.2.2' && /submission quota|quota exceeded/i.test(text) && !/mailbox full|MapiExceptionShutoffQuotaExceeded|MapiExceptionQuotaExceeded/i.test(text))) {
    return { kind: 'mailbox-quota', scope: 'mailbox', holdMs: QUOTA_WINDOW_RETRY_MS, why: 'the mailbox is over Microsoft\'s sending quota (10,000 recipients per 24 hours)' };
  }
  if (status === '4.3.2' && /ClientSubmit|sender thread limit|Concurrent connections/i.test(text)) {
    return { kind: 'connections', scope: 'mailbox', holdMs: CONNECTION_RETRY_MS, why: 'more than 3 simultaneous SMTP AUTH connections for the mailbox' };
  }
  if (status === '5.7.233' || status === '5.7.232') {
    return { kind: 'tenant-external', scope: 'tenant', holdMs: QUOTA_WINDOW_RETRY_MS, why: `the tenant is over its daily limit of external recipients (${status})` };
  }
  if (klass === 4 && subject === 7 && detail >= 500 && detail <= 699) {
    return { kind: 'backoff', scope: 'mailbox', holdMs: BACKOFF_START_MS, why: `Microsoft restricts sending for now (${status}, "try again later")` };
  }
  if (klass === 5 && subject === 2 && detail >= 251 && detail <= 255 && (reply.replyCode === 550 || /throttled|continuous/i.test(text))) {
    return { kind: 'park', scope: 'mailbox', holdMs: 0, why: `Microsoft has blocked the mailbox from SMTP AUTH after repeated errors (${status})` };
  }
  if (status === '5.1.8') return { kind: 'park', scope: 'mailbox', holdMs: 0, why: 'the mailbox is restricted as an outbound spammer (5.1.8); an admin must release it in Microsoft Defender' };
  if (status === '5.7.705') return { kind: 'park', scope: 'tenant', holdMs: 0, why: 'the tenant is blocked for sending spam or bulk mail (5.7.705); only Microsoft support can lift it' };
  if (status === '5.7.708') return { kind: 'park', scope: 'tenant', holdMs: 0, why: 'Microsoft does not accept traffic from this tenant\'s IP pool (5.7.708); only Microsoft support can lift it' };
  return undefined;
}

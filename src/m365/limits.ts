/**
 * Microsoft 365 sending limits, applied to upstreams that go to Exchange Online when the config does
 * not set them (research m365.md §5): 500 recipients per message (the default; admins may set
 * 1–1,000), and on SMTP AUTH client submission 30 messages per minute and 10,000 recipients per
 * rolling 24 h per mailbox — Microsoft *refuses* the excess rather than queueing it, so a scanner's
 * burst must wait in our queue instead. Graph allows 4 concurrent requests per app and mailbox
 * (shared by the upstreams of that pair: graph-concurrency.ts). Explicit config
 * values always win. Pure.
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';

export type M365Route = 'smtp-auth' | 'graph' | 'connector';

export interface EffectiveLimits {
  maxRecipientsPerMessage?: number;
  maxMessagesPerMinute?: number;
  maxRecipientsPerDay?: number;
  maxConnections: number;
}

/** Which Microsoft 365 route an upstream is, or undefined for any other smart host. */
export function m365Route(upstream: UpstreamConfig): M365Route | undefined {
  if (upstream.url.startsWith('graph://')) return 'graph';
  if (upstream.url.startsWith('connector://')) return 'connector';
  const host = upstream.url.replace(/^[a-z+]+:\/\//i, '').split(/[:/]/)[0].toLowerCase();
  if (host === 'smtp.office365.com' || host === 'smtp-legacy.office365.com' || upstream.auth === 'xoauth2') return 'smtp-auth';
  return undefined;
}

/** The upstream's limits with Microsoft's defaults filled in where the config leaves them open. */
export function effectiveLimits(upstream: UpstreamConfig): EffectiveLimits {
  const route = m365Route(upstream);
  const explicit = { maxRecipientsPerMessage: upstream.maxRecipientsPerMessage, maxMessagesPerMinute: upstream.maxMessagesPerMinute, maxRecipientsPerDay: upstream.maxRecipientsPerDay, maxConnections: upstream.maxConnections };
  if (!route) return explicit;
  return {
    maxRecipientsPerMessage: upstream.maxRecipientsPerMessage ?? 500,
    maxMessagesPerMinute: upstream.maxMessagesPerMinute ?? (route === 'smtp-auth' ? 30 : undefined),
    maxRecipientsPerDay: upstream.maxRecipientsPerDay ?? (route === 'connector' ? undefined : 10_000),
    maxConnections: route === 'graph' ? Math.min(upstream.maxConnections, 4) : upstream.maxConnections,
  };
}

/** Splits recipients into submissions of at most `max` (a 1,500-recipient message → 3 × 500). */
export function splitRecipients(recipients: readonly string[], max: number | undefined): string[][] {
  if (!max || recipients.length <= max) return [recipients.slice()];
  const out: string[][] = [];
  for (let i = 0; i < recipients.length; i += max) out.push(recipients.slice(i, i + max));
  return out;
}
